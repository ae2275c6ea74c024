"""Dispatch a parsed config to its backend and assemble the result document."""
from __future__ import annotations

import threading
import time
from typing import Any, Optional

from lem_worker.calibration import calibration_metrics, make_burn, run_burn
from lem_worker.config import WorkerConfig
from lem_worker.energy.nvml_basic import open_nvml, read_total_energy_mj
from lem_worker.energy.rapl import RaplMeter, rapl_delta_j
from lem_worker.environment import base_environment
from lem_worker.errors import ConfigError
from lem_worker.log import log
from lem_worker.timeutil import utc_now_iso


def _reading(joules: Optional[float], source: str, reason: Optional[str]) -> dict[str, Any]:
    if joules is None:
        return {"joules": None, "source": None, "reason": reason or "not measured"}
    return {"joules": max(0.0, joules), "source": source, "reason": None}


def run_calibration_v1(cfg: WorkerConfig, stop: threading.Event) -> dict[str, Any]:
    cal = cfg.experiment.calibration
    assert cal is not None
    started_at = utc_now_iso()
    burn = make_burn(cal)
    rapl = RaplMeter()
    nvml, gpu_reason = open_nvml()
    gpu_start: Optional[int] = None
    if nvml is not None:
        gpu_start, gpu_reason = read_total_energy_mj(nvml)
    log(f"calibration: {burn.engine} matmul n={burn.n} {cal.dtype} for {cal.duration_s}s")
    rapl_start = rapl.snapshot()
    t0 = time.perf_counter()
    stats = run_burn(burn, cal.duration_s, stop.is_set)
    rapl_end = rapl.snapshot()
    gpu_j: Optional[float] = None
    if nvml is not None and gpu_start is not None:
        gpu_end, gpu_reason = read_total_energy_mj(nvml)
        if gpu_end is not None:
            if gpu_end < gpu_start:
                gpu_reason = "NVML energy counter went backwards (driver reload): window invalid"
            else:
                gpu_j = (gpu_end - gpu_start) / 1000.0
    window_s = time.perf_counter() - t0
    ended_at = utc_now_iso()
    cpu_j = rapl_delta_j(rapl_start, rapl_end, "cpu")
    dram_j = rapl_delta_j(rapl_start, rapl_end, "dram")
    energy = {
        "gpu": _reading(gpu_j, "nvml_total_energy", gpu_reason),
        "cpu": _reading(cpu_j, "rapl", rapl.reason_cpu),
        "dram": _reading(dram_j, "rapl", rapl.reason_dram),
    }
    metrics: dict[str, Optional[float]] = dict(calibration_metrics(stats))
    unmeasured: dict[str, str] = {}
    for dom in ("gpu", "cpu", "dram"):
        metrics[f"energy_{dom}_j"] = energy[dom]["joules"]
        if energy[dom]["joules"] is None:
            unmeasured[f"energy_{dom}_j"] = energy[dom]["reason"]
    measured = [energy[d]["joules"] for d in ("gpu", "cpu", "dram") if energy[d]["joules"] is not None]
    total = sum(measured) if measured else None
    metrics["energy_total_j"] = total
    if total is None:
        reason = "no energy domain could be measured on this host"
        unmeasured["energy_total_j"] = reason
        metrics["power_mean_w"] = None
        unmeasured["power_mean_w"] = reason
        metrics["j_per_gflop"] = None
        unmeasured["j_per_gflop"] = reason
    else:
        metrics["power_mean_w"] = total / window_s if window_s > 0 else None
        metrics["j_per_gflop"] = total / (stats.flops / 1e9) if stats.flops > 0 else None
    for k, v in list(metrics.items()):
        if v is None and k not in unmeasured:
            unmeasured[k] = "not computable (zero duration or work)"
    env = base_environment()
    env.update({"calibration_engine": burn.engine, "effective_matrix_size": burn.n, "library_versions": burn.library_versions})
    notes = list(burn.notes)
    notes.append(f"calibration: {stats.iterations} x {burn.engine} matmul n={burn.n} in {stats.elapsed_s:.3f}s")
    if total is not None:
        notes.append("energy_total_j sums only the measured domains: " + ", ".join(d for d in ("gpu", "cpu", "dram") if energy[d]["joules"] is not None))
    return {
        "schema_version": 1,
        "run_id": cfg.run.run_id,
        "experiment_id": cfg.run.experiment_id,
        "cycle": cfg.run.cycle,
        "attempt": cfg.run.attempt,
        "backend": cfg.experiment.backend,
        "started_at": started_at,
        "ended_at": ended_at,
        "metrics": metrics,
        "unmeasured": unmeasured,
        "energy": energy,
        "environment": env,
        "notes": notes,
    }


def run_experiment(cfg: WorkerConfig, stop: threading.Event) -> dict[str, Any]:
    backend = cfg.experiment.backend
    if backend == "calibration":
        return run_calibration_v1(cfg, stop)
    raise ConfigError(f"experiment.backend: {backend} is not implemented by this worker yet")
