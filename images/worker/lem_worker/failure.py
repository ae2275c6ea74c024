"""Classifying a failure (exception → kind, exit code) and writing failure.json.

failure.json: {"schema": "lem.failure/1", "kind": …, "exit_code": …, "message": …, "detail": {…}},
written atomically next to where result.json would go, on every failure the worker can report.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from lem_worker.errors import (EXIT_CODES, KINDS_BY_EXIT, MISSING_DEPENDENCY, OUT_OF_MEMORY, MissingDependency,
                               WorkerError)

SCHEMA = "lem.failure/1"
#: Engine messages that mean the device (or host) ran out of memory, whatever the exception type.
OOM_MARKERS = ("CUDA out of memory", "CUDA error: out of memory", "OutOfMemoryError", "out of memory")


@dataclass
class Failure:
    kind: str
    exit_code: int
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "kind": self.kind, "exit_code": self.exit_code, "message": self.message,
                "detail": self.detail}


def one_paragraph(text: str) -> str:
    return " ".join(text.split())


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    names = {t.__name__ for t in type(exc).__mro__}
    if "OutOfMemoryError" in names:  # torch.cuda.OutOfMemoryError (torch >= 1.13), without importing torch
        return True
    text = str(exc)
    return any(m in text for m in OOM_MARKERS)


def classify(exc: BaseException) -> Failure:
    """The failure kind, exit code and message of an exception that ended a run."""
    message = one_paragraph(str(exc)) or type(exc).__name__
    detail: dict[str, Any] = {"exception": type(exc).__name__}
    if isinstance(exc, MissingDependency):
        detail["packages"] = exc.packages
        return Failure(exc.kind, exc.exit_code, message, detail)
    if isinstance(exc, WorkerError) and exc.exit_code in KINDS_BY_EXIT and exc.exit_code != 1:
        return Failure(KINDS_BY_EXIT[exc.exit_code], exc.exit_code, message, detail)
    if isinstance(exc, ImportError):  # ModuleNotFoundError included: an engine, datasets, transformers…
        name = exc.name or ""
        detail["packages"] = [name.split(".")[0]] if name else []
        return Failure(MISSING_DEPENDENCY, EXIT_CODES[MISSING_DEPENDENCY],
                       f"a Python package is missing in this interpreter/image: {type(exc).__name__}: {message}", detail)
    if _is_oom(exc):
        return Failure(OUT_OF_MEMORY, EXIT_CODES[OUT_OF_MEMORY],
                       f"out of memory: {message if isinstance(exc, WorkerError) else f'{type(exc).__name__}: {message}'}",
                       detail)
    if not isinstance(exc, WorkerError):
        message = f"{type(exc).__name__}: {message}"
    return Failure("engine_error", 1, message, detail)


def write_failure(out_dir: str, failure: Failure) -> str | None:
    """Writes failure.json in out_dir (atomically); None when it cannot be written (the exit code still says)."""
    from lem_worker.resultio import write_result_atomic

    try:
        return write_result_atomic(out_dir, failure.document(), name="failure.json")
    except (OSError, ValueError):
        return None


def clear_failure(out_dir: str) -> None:
    """A run that succeeds leaves no failure.json behind (a retried attempt has its own directory anyway)."""
    try:
        os.unlink(os.path.join(out_dir, "failure.json"))
    except OSError:
        pass
