"""Failure kinds and the exit codes the CLI maps them to (the orchestrator's retry policy reads both).

    0 ok · 1 engine_error (retryable) · 2 config_error (never retried) · 3 missing_dependency (never
    retried) · 4 out_of_memory (not retried with the same config) · 75 lock_timeout (retryable) ·
    143 terminated (SIGTERM/SIGINT)

On any failure the worker writes failure.json (see failure.py) next to where result.json would go.
"""
from __future__ import annotations

ENGINE_ERROR = "engine_error"
CONFIG_ERROR = "config_error"
MISSING_DEPENDENCY = "missing_dependency"
OUT_OF_MEMORY = "out_of_memory"
LOCK_TIMEOUT = "lock_timeout"
TERMINATED = "terminated"

#: Exit code of each failure kind (the documented contract with the orchestrator).
EXIT_CODES: dict[str, int] = {
    ENGINE_ERROR: 1,
    CONFIG_ERROR: 2,
    MISSING_DEPENDENCY: 3,
    OUT_OF_MEMORY: 4,
    LOCK_TIMEOUT: 75,
    TERMINATED: 143,
}
#: The kind of each exit code.
KINDS_BY_EXIT: dict[int, str] = {code: kind for kind, code in EXIT_CODES.items()}


class WorkerError(Exception):
    """A run failed at runtime (exit 1, engine_error)."""

    kind = ENGINE_ERROR
    exit_code = EXIT_CODES[ENGINE_ERROR]


class ConfigError(WorkerError):
    """CONFIG.json is malformed or asks for something invalid (exit 2)."""

    kind = CONFIG_ERROR
    exit_code = EXIT_CODES[CONFIG_ERROR]


class MissingDependency(WorkerError):
    """A Python package the config needs is not installed in this interpreter/image (exit 3)."""

    kind = MISSING_DEPENDENCY
    exit_code = EXIT_CODES[MISSING_DEPENDENCY]

    def __init__(self, message: str, packages: list[str] | None = None) -> None:
        super().__init__(message)
        self.packages = list(packages or [])


class OutOfMemory(WorkerError):
    """The engine ran out of (GPU or host) memory (exit 4); the same config would fail again."""

    kind = OUT_OF_MEMORY
    exit_code = EXIT_CODES[OUT_OF_MEMORY]


class LockTimeout(WorkerError):
    """Gave up waiting for another measurement to release a device (exit 75, EX_TEMPFAIL)."""

    kind = LOCK_TIMEOUT
    exit_code = EXIT_CODES[LOCK_TIMEOUT]


class Terminated(WorkerError):
    """SIGTERM/SIGINT arrived: stop promptly, write no result (exit 143)."""

    kind = TERMINATED
    exit_code = EXIT_CODES[TERMINATED]
