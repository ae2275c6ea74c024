"""Failure kinds the CLI maps to exit codes."""
from __future__ import annotations


class WorkerError(Exception):
    """A run failed at runtime (exit 1)."""

    exit_code = 1


class ConfigError(WorkerError):
    """CONFIG.json is malformed or asks for something invalid (exit 2)."""

    exit_code = 2


class Terminated(WorkerError):
    """SIGTERM/SIGINT arrived: stop promptly, write nothing (exit 143)."""

    exit_code = 143
