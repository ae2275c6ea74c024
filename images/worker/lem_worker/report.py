"""Assembles result schema v3 (see images/worker/RESULTS.md and src/contract/result.ts)."""
from __future__ import annotations

import math
from typing import Any, Optional

from lem_worker.config import WorkerConfig
from lem_worker.energy.meter import Baseline, Flag, Meter, WindowEnergy

SCHEMA_VERSION = 3
TEMP_RANGE_C = (20.0, 95.0)
TEMP_OUT_OF_RANGE_MAX_FRAC = 0.05
SUSPICIOUS_J_PER_TOKEN = 100.0


class MetricSet:
    """Flat unit-suffixed metrics with a reason for every null."""

    def __init__(self) -> None:
        self.metrics: dict[str, Optional[float]] = {}
        self.unmeasured: dict[str, str] = {}

    def put(self, name: str, value: Optional[float], reason: Optional[str] = None) -> None:
        if value is not None and (isinstance(value, bool) or not math.isfinite(float(value))):
            value = None
            reason = reason or "not a finite number"
        self.metrics[name] = None if value is None else float(value)
        if value is None:
            self.unmeasured[name] = reason or "not measured"
        else:
            self.unmeasured.pop(name, None)

    def ratio(self, name: str, num: Optional[float], den: Optional[float], num_reason: str, den_reason: str = "denominator is zero") -> None:
        if num is None:
            self.put(name, None, num_reason)
        elif den is None or den <= 0:
            self.put(name, None, den_reason)
        else:
            self.put(name, num / den)

    def get(self, name: str) -> Optional[float]:
        return self.metrics.get(name)


def adjusted(raw: Optional[float], base_w: Optional[float], window_s: float) -> tuple[Optional[float], bool]:
    """raw − baseline power × window, floored at 0; (value, floored?)."""
    if raw is None or base_w is None:
        return None, False
    v = raw - base_w * window_s
    return (0.0, True) if v < 0 else (v, False)


def energy_block(win: WindowEnergy, baseline: Optional[Baseline], ms: MetricSet, flags: list[Flag]) -> dict[str, Any]:
    d = win.duration_s
    raw = {"gpu": win.gpu, "cpu": win.cpu, "dram": win.dram}
    base_w = {
        "gpu": baseline.gpu_power_w if baseline else None,
        "cpu": baseline.cpu_power_w if baseline else None,
        "dram": baseline.dram_power_w if baseline else None,
    }
    adj: dict[str, Optional[float]] = {}
    for dom, r in raw.items():
        reason = r.reason or "not measured"
        ms.put(f"energy_{dom}_j", r.joules, reason)
        ms.put(f"energy_{dom}_raw_j", r.joules, reason)
        if r.joules is None:
            adj[dom] = None
            ms.put(f"energy_{dom}_adjusted_j", None, reason)
        elif baseline is None:
            adj[dom] = None
            ms.put(f"energy_{dom}_adjusted_j", None, "no idle baseline (measurement.idle_baseline_s is 0)")
        elif base_w[dom] is None:
            adj[dom] = None
            ms.put(f"energy_{dom}_adjusted_j", None, f"idle baseline for {dom} not measured")
        else:
            value, floored = adjusted(r.joules, base_w[dom], d)
            adj[dom] = value
            ms.put(f"energy_{dom}_adjusted_j", value)
            if floored:
                flags.append(Flag("baseline_exceeds_window", "warn",
                                  f"{dom}: idle baseline {base_w[dom]:.2f} W x {d:.2f} s exceeds the window's "
                                  f"{r.joules:.3f} J; adjusted energy floored at 0"))
        ms.put(f"baseline_power_{dom}_w", base_w[dom],
               "no idle baseline (measurement.idle_baseline_s is 0)" if baseline is None else f"idle baseline for {dom} not measured")
    total = win.total_j()
    ms.put("energy_total_j", total, "no energy domain could be measured on this host")
    ms.put("energy_total_raw_j", total, "no energy domain could be measured on this host")
    adj_vals = [adj[dm] for dm in ("gpu", "cpu", "dram") if raw[dm].joules is not None]
    total_adj = sum(v for v in adj_vals if v is not None) if adj_vals and all(v is not None for v in adj_vals) else None
    ms.put("energy_total_adjusted_j", total_adj,
           "no energy domain could be measured on this host" if total is None else "no idle baseline for every measured domain")
    ms.put("window_s", d)
    ms.ratio("power_mean_w", total, d, "no energy domain could be measured on this host")
    s = win.summary
    no_samples = "no NVML power samples (no GPU measured)"
    ms.put("gpu_power_sampled_mean_w", s.power_mean_w if s else None, no_samples)
    ms.put("gpu_power_peak_w", s.power_peak_w if s else None, no_samples)
    ms.put("gpu_temp_start_c", s.temp_start_c if s else None, no_samples)
    ms.put("gpu_temp_end_c", s.temp_end_c if s else None, no_samples)
    ms.put("gpu_thermal_throttle_frac", s.thermal_throttle_frac if s else None, no_samples)
    ms.put("gpu_power_throttle_frac", s.power_throttle_frac if s else None, no_samples)
    cc = win.cross_check
    ms.put("cross_check_rel_diff", cc["rel_diff"] if cc else None,
           "cross-check needs an NVML energy counter and power samples" if cc is None else (cc.get("reason") or "undefined"))
    measured = [dm for dm in ("gpu", "cpu", "dram") if raw[dm].joules is not None]
    return {
        "gpu": win.gpu.as_reading(),
        "cpu": win.cpu.as_reading(),
        "dram": win.dram.as_reading(),
        "window_s": d,
        "method": "counter deltas between reads at the steady-window edges, each read after a device synchronise",
        "total_domains": measured,
        "raw": {"gpu_j": win.gpu.joules, "cpu_j": win.cpu.joules, "dram_j": win.dram.joules, "total_j": total},
        "adjusted": {"gpu_j": adj["gpu"], "cpu_j": adj["cpu"], "dram_j": adj["dram"], "total_j": total_adj,
                     "method": "raw - idle baseline power x window duration, floored at 0"},
        "baseline": baseline.as_dict() if baseline else None,
        "per_gpu": win.per_gpu,
        "cross_check": cc,
    }


def warmup_flag(warmup: Optional[dict[str, Any]]) -> tuple[Optional[Flag], Optional[str]]:
    """(flag, skip reason) of the warmup_not_converged gate for a run_warmup() record."""
    if warmup is None:
        return None, "no warm-up in this workload (calibration)"
    if warmup.get("mode") != "cv":
        return None, "warmup.mode is fixed: no convergence criterion"
    if warmup.get("converged") is not False:
        return None, None
    cv = warmup.get("cv")
    return Flag("warmup_not_converged", "warn",
                f"warm-up hit warmup.max_iterations {warmup.get('max_iterations')} without converging: CV of the last "
                f"{warmup.get('window')} iteration times {'undefined' if cv is None else f'{cv:.3f}'} > "
                f"warmup.cv_threshold {warmup.get('cv_threshold')}; the steady window may include warm-up effects"), None


def validation_block(cfg: WorkerConfig, win: WindowEnergy, extra_flags: list[Flag],
                     failed_requests: Optional[int] = None, j_per_token: Optional[float] = None,
                     baseline: Optional[Baseline] = None, warmup: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The run's validation gates. `baseline` is what Meter.idle_baseline returned (None: no
    baseline); `warmup` the run_warmup() record (None: no warm-up, as in calibration)."""
    flags: list[Flag] = list(win.flags) + list(extra_flags)
    checked = ["counter_reset", "zero_energy_with_power", "window_too_short"]
    skipped: dict[str, str] = {}
    if baseline is None:
        skipped["baseline_unstable"] = "no idle baseline (measurement.idle_baseline_s is 0)"
    elif baseline.stable is None:
        skipped["baseline_unstable"] = (baseline.final.reason if baseline.final and baseline.final.reason
                                        else baseline.skip_reason or "baseline stability not assessable")
    else:
        checked.append("baseline_unstable")
        bflag = baseline.flag()
        if bflag is not None:
            flags.append(bflag)
    wflag, wskip = warmup_flag(warmup)
    if wskip is not None:
        skipped["warmup_not_converged"] = wskip
    else:
        checked.append("warmup_not_converged")
        if wflag is not None:
            flags.append(wflag)
    min_w = cfg.experiment.measurement.min_window_s
    if win.duration_s < min_w:
        flags.append(Flag("window_too_short", "fail",
                          f"steady window {win.duration_s:.2f} s < measurement.min_window_s {min_w:g} s"))
    s = win.summary
    if s is None or s.count == 0:
        for g in ("temperature_range", "thermal_throttling", "power_throttling"):
            skipped[g] = "no GPU power/thermal samples"
    else:
        checked += ["temperature_range", "thermal_throttling", "power_throttling"]
        if s.temp_out_of_range_frac is not None and s.temp_out_of_range_frac >= TEMP_OUT_OF_RANGE_MAX_FRAC:
            flags.append(Flag("temperature_range", "fail",
                              f"{s.temp_out_of_range_frac:.1%} of samples outside {TEMP_RANGE_C[0]:g}-{TEMP_RANGE_C[1]:g} C"))
        if s.thermal_throttle_frac:
            flags.append(Flag("thermal_throttling", "warn", f"{s.thermal_throttle_frac:.1%} of samples thermally throttled (0x20|0x40)"))
        if s.power_throttle_frac:
            flags.append(Flag("power_throttling", "warn", f"{s.power_throttle_frac:.1%} of samples power-capped (0x4|0x80)"))
    if win.cross_check is None or win.cross_check.get("rel_diff") is None:
        skipped["cross_check"] = "needs an NVML energy counter and power samples"
    else:
        checked.append("cross_check")
    if failed_requests is not None:
        checked.append("failed_requests")
    if failed_requests:
        flags.append(Flag("failed_requests", "fail", f"{failed_requests} request(s) failed"))
    if j_per_token is not None:
        checked.append("j_per_token_plausible")
        if j_per_token > SUSPICIOUS_J_PER_TOKEN:
            flags.append(Flag("j_per_token_plausible", "warn", f"{j_per_token:.1f} J per output token is suspiciously high (> 100)"))
    if win.gpu.joules is None and win.cpu.joules is None and win.dram.joules is None:
        flags.append(Flag("no_energy_measured", "warn", "no energy domain could be measured on this host"))
    return {
        "passed": not any(f.severity == "fail" for f in flags),
        "flags": [f.as_dict() for f in flags],
        "checked": sorted(set(checked)),
        "skipped": skipped,
    }


def build_result(cfg: WorkerConfig, started_at: str, ended_at: str, ms: MetricSet, energy: dict[str, Any],
                 meter: Meter, warmup: Optional[dict[str, Any]], window: dict[str, Any],
                 phases: Optional[dict[str, Any]], validation: dict[str, Any], environment: dict[str, Any],
                 notes: list[str], workload: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": cfg.run.run_id,
        "experiment_id": cfg.run.experiment_id,
        "cycle": cfg.run.cycle,
        "attempt": cfg.run.attempt,
        "backend": cfg.experiment.backend,
        "started_at": started_at,
        "ended_at": ended_at,
        "metrics": ms.metrics,
        "unmeasured": ms.unmeasured,
        "energy": energy,
        "timeline": meter.timeline(),
        "warmup": warmup,
        "window": window,
        "phases": phases,
        "validation": validation,
        # extra: (engine keyword arguments) is recorded as given
        "workload": {**(workload or {}), **({"extra": cfg.experiment.extra} if cfg.experiment.extra else {})},
        "environment": environment,
        "notes": notes,
    }
