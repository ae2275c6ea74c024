"""The calibration workload: a real, measured dense-matmul compute burn.

Runs C = A @ B on matrix_size x matrix_size matrices of `dtype` for `duration_s` seconds and
reports work done (FLOPs, 2 n^3 per multiply) and the energy the host could measure over the
same window. numpy is used when present; otherwise pure Python with a smaller work unit
(min(matrix_size, 48)), recorded in notes, since a pure-Python 256^3 multiply takes seconds.
device "cuda" needs torch with CUDA.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from lem_worker.config import CalibrationCfg
from lem_worker.errors import WorkerError

PURE_PYTHON_MAX_N = 48


@dataclass
class Burn:
    """One unit of work (a matrix multiply) and its bookkeeping."""

    step: Callable[[], None]
    sync: Callable[[], None]
    n: int
    engine: str
    notes: list[str] = field(default_factory=list)
    library_versions: dict[str, Optional[str]] = field(default_factory=dict)

    @property
    def flops_per_step(self) -> float:
        return 2.0 * float(self.n) ** 3


def _pure_python_burn(cfg: CalibrationCfg) -> Burn:
    n = min(cfg.matrix_size, PURE_PYTHON_MAX_N)
    rng = random.Random(1234)
    a = [[rng.random() for _ in range(n)] for _ in range(n)]
    bt = [[rng.random() for _ in range(n)] for _ in range(n)]  # B transposed: rows are columns of B
    sink: list[float] = [0.0]

    def step() -> None:
        total = 0.0
        for row in a:
            for col in bt:
                total += sum(x * y for x, y in zip(row, col))
        sink[0] = total

    notes = [
        f"numpy not available: pure-Python matmul with n={n} (requested {cfg.matrix_size}); "
        "Python floats are float64 regardless of calibration.dtype"
    ]
    return Burn(step, lambda: None, n, "python", notes)


def _numpy_burn(cfg: CalibrationCfg) -> Burn:
    import numpy as np

    rng = np.random.default_rng(1234)
    dt = np.float32 if cfg.dtype == "float32" else np.float64
    n = cfg.matrix_size
    a = rng.standard_normal((n, n)).astype(dt)
    b = rng.standard_normal((n, n)).astype(dt)
    out = np.empty((n, n), dtype=dt)

    def step() -> None:
        np.matmul(a, b, out=out)

    return Burn(step, lambda: None, n, "numpy", [], {"numpy": np.__version__})


def _torch_cuda_burn(cfg: CalibrationCfg) -> Burn:
    try:
        import torch
    except ImportError:
        raise WorkerError("calibration.device is cuda but torch is not installed in this interpreter") from None
    if not torch.cuda.is_available():
        raise WorkerError("calibration.device is cuda but torch reports no CUDA device (torch.cuda.is_available() is False)")
    dt = torch.float32 if cfg.dtype == "float32" else torch.float64
    n = cfg.matrix_size
    gen = torch.Generator(device="cuda").manual_seed(1234)
    a = torch.randn((n, n), dtype=dt, device="cuda", generator=gen)
    b = torch.randn((n, n), dtype=dt, device="cuda", generator=gen)
    out = torch.empty((n, n), dtype=dt, device="cuda")

    def step() -> None:
        torch.matmul(a, b, out=out)

    return Burn(step, torch.cuda.synchronize, n, "torch_cuda", [], {"torch": str(torch.__version__)})


def make_burn(cfg: CalibrationCfg) -> Burn:
    if cfg.device == "cuda":
        return _torch_cuda_burn(cfg)
    try:
        import numpy  # noqa: F401
    except ImportError:
        return _pure_python_burn(cfg)
    return _numpy_burn(cfg)


@dataclass
class BurnStats:
    iterations: int
    elapsed_s: float
    flops: float


def run_burn(burn: Burn, duration_s: float, should_stop: Callable[[], bool]) -> BurnStats:
    """Repeat the unit of work until duration_s has elapsed (measured after a device sync)."""
    iterations = 0
    t0 = time.perf_counter()
    deadline = t0 + duration_s
    while True:
        burn.step()
        iterations += 1
        if should_stop():
            break
        # Check the clock every step on CPU; on CUDA the launch is async, sync every 16 steps.
        if burn.engine == "torch_cuda" and iterations % 16:
            continue
        if time.perf_counter() >= deadline:
            break
    burn.sync()
    elapsed = time.perf_counter() - t0
    return BurnStats(iterations, elapsed, iterations * burn.flops_per_step)


def calibration_metrics(stats: BurnStats) -> dict[str, Any]:
    return {
        "duration_s": stats.elapsed_s,
        "iterations": float(stats.iterations),
        "flops": stats.flops,
        "flops_per_s": stats.flops / stats.elapsed_s if stats.elapsed_s > 0 else None,
    }
