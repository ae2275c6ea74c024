"""Atomic result.json writing: temp file in the same directory, fsync, os.replace.

result.json gets RUN_FILE_MODE (0644), the mode the orchestrator gives config.json and worker.log
(mkstemp alone would leave it owner-only)."""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

RUN_FILE_MODE = 0o644


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite number at {path}: {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]")


def write_result_atomic(out_dir: str, result: dict[str, Any], name: str = "result.json") -> str:
    _check_finite(result, "(root)")
    os.makedirs(out_dir, exist_ok=True)
    data = json.dumps(result, indent=2, sort_keys=False, allow_nan=False).encode("utf-8") + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=".result.", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), RUN_FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        final = os.path.join(out_dir, name)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(out_dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return final
