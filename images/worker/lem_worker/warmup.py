"""Warm-up: a fixed number of iterations, or until the coefficient of variation of the last
`window` iteration times is at most `cv_threshold` (capped at max_iterations)."""
from __future__ import annotations

import statistics
import threading
import time
from typing import Any, Callable, Optional

from lem_worker.config import WarmupCfg
from lem_worker.errors import Terminated
from lem_worker.log import log


def coefficient_of_variation(values: list[float]) -> Optional[float]:
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    if mean <= 0:
        return None
    return statistics.stdev(values) / mean


def run_warmup(cfg: WarmupCfg, step: Callable[[], None], stop: threading.Event,
               timer: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    durations: list[float] = []
    converged: Optional[bool] = None
    cv: Optional[float] = None
    limit = cfg.iterations if cfg.mode == "fixed" else cfg.max_iterations
    for _ in range(limit):
        if stop.is_set():
            raise Terminated("stopped during warm-up")
        t0 = timer()
        step()
        durations.append(timer() - t0)
        if len(durations) >= cfg.window:
            cv = coefficient_of_variation(durations[-cfg.window:])
        if cfg.mode == "cv" and cv is not None and cv <= cfg.cv_threshold:
            converged = True
            break
    if cfg.mode == "cv" and converged is None:
        converged = False
    log(f"warm-up: {len(durations)} iteration(s), mode {cfg.mode}"
        + ("" if cv is None else f", CV {cv:.3f}") + ("" if converged is None else f", converged={converged}"))
    return {
        "mode": cfg.mode,
        "iterations": len(durations),
        "converged": converged,
        "cv": cv,
        "cv_threshold": cfg.cv_threshold if cfg.mode == "cv" else None,
        "window": cfg.window,
        "max_iterations": cfg.max_iterations if cfg.mode == "cv" else None,
        "durations_s": [round(d, 6) for d in durations],
    }
