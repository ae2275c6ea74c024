"""Progress lines on stderr; the orchestrator streams them into the per-run log."""
from __future__ import annotations

import sys
import time


QUIET = False


def log(message: str) -> None:
    if QUIET:
        return
    stamp = time.strftime("%H:%M:%S", time.gmtime())
    sys.stderr.write(f"[lem-worker {stamp}] {message}\n")
    sys.stderr.flush()
