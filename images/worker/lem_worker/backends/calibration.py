"""The calibration backend: a fixed matrix-multiply burn, measured like any run (checks the meter)."""
from __future__ import annotations

import threading
from typing import Any

from lem_worker.backends import register
from lem_worker.calibration import make_burn, run_burn
from lem_worker.config import WorkerConfig
from lem_worker.engines import CACHE
from lem_worker.environment import base_environment, module_version
from lem_worker.errors import Terminated
from lem_worker.gpuguard import guard_for
from lem_worker.log import log
from lem_worker.metering import lock_for_run, make_meter
from lem_worker.report import MetricSet, energy_block, validation_block, build_result
from lem_worker.timeutil import utc_now_iso


@register("calibration")
def run_calibration(cfg: WorkerConfig, stop: threading.Event, **meter_kwargs: Any) -> dict[str, Any]:
    cal = cfg.experiment.calibration
    assert cal is not None
    started_at = utc_now_iso()
    cal_cfg = cal
    burn, engine = CACHE.acquire({"backend": "calibration", "device": cal.device, "dtype": cal.dtype,
                                  "matrix_size": cal.matrix_size}, lambda: make_burn(cal_cfg))
    if burn.engine == "torch_cuda" and cfg.experiment.measurement.gpu_ids is None:
        import dataclasses

        exp = cfg.experiment
        cfg = dataclasses.replace(cfg, experiment=dataclasses.replace(
            exp, measurement=dataclasses.replace(exp.measurement, gpu_ids=[0])))  # the burn runs on cuda:0
    meter = make_meter(cfg, sync=burn.sync, **meter_kwargs)
    lock = lock_for_run(cfg, meter, stop)
    try:
        lock.acquire()  # held over idle baseline + window: one measurement per device at a time
        meter.start()
        baseline = meter.idle_baseline(cfg.experiment.measurement.idle_baseline_s, stop)
        if stop.is_set():
            raise Terminated("stopped during the idle baseline")
        log(f"calibration: {burn.engine} matmul n={burn.n} {cal.dtype} for {cal.duration_s}s")
        win_started = utc_now_iso()
        guard = guard_for(meter)  # other processes on this run's GPUs at window start and end
        if guard is not None:
            guard.check("window_start")
        h = meter.begin("steady")
        stats = run_burn(burn, cal.duration_s, stop.is_set)
        win = meter.end(h)
        if guard is not None:
            guard.check("window_end")
        win_ended = utc_now_iso()
        if stop.is_set():
            raise Terminated("stopped during the measured window")
        ms = MetricSet()
        ms.put("duration_s", stats.elapsed_s)
        ms.put("iterations", float(stats.iterations))
        ms.put("flops", stats.flops)
        ms.ratio("flops_per_s", stats.flops, stats.elapsed_s, "", "zero duration")
        flags: list[Any] = guard.flags() if guard is not None else []
        energy = energy_block(win, baseline, ms, flags)
        gflop = stats.flops / 1e9
        ms.ratio("j_per_gflop", ms.get("energy_total_j"), gflop, ms.unmeasured.get("energy_total_j", "not measured"))
        ms.ratio("j_per_gflop_adjusted", ms.get("energy_total_adjusted_j"), gflop,
                 ms.unmeasured.get("energy_total_adjusted_j", "not measured"))
        validation = validation_block(cfg, win, flags, baseline=baseline)
        env = base_environment()
        env.update(meter.environment())
        env.update({"calibration_engine": burn.engine, "effective_matrix_size": burn.n,
                    "library_versions": {**burn.library_versions, "numpy": module_version("numpy")},
                    "started_at": started_at})
        if guard is not None:
            env["gpu_guard"] = guard.record
        notes = list(burn.notes) + meter.notes
        notes.append(f"calibration: {stats.iterations} x {burn.engine} matmul n={burn.n} in {stats.elapsed_s:.3f}s")
        if energy["total_domains"]:
            notes.append("energy_total_j sums only the measured domains: " + ", ".join(energy["total_domains"]))
        window = {"duration_s": win.duration_s, "min_s": cfg.experiment.measurement.min_window_s,
                  "repetitions": stats.iterations, "short": win.duration_s < cfg.experiment.measurement.min_window_s,
                  "rule": "calibration runs for calibration.duration_s; flagged when shorter than measurement.min_window_s",
                  "started_at": win_started, "ended_at": win_ended}
        ended_at = utc_now_iso()
        env["ended_at"] = ended_at
        result = build_result(cfg, started_at, ended_at, ms, energy, meter, None, window, None, validation, env, notes,
                              workload={"kind": "calibration", "engine": burn.engine, "matrix_size": burn.n,
                                        "dtype": cal.dtype, "device": cal.device})
        result["device_lock"] = lock.record
        result["engine"] = engine
        return result
    finally:
        meter.close()
        lock.release()
