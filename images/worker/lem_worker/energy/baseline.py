"""The idle baseline's stability gate: power CV and drift per step, extension record, flag.

Meter.idle_baseline measures the steps; this module holds the pure parts (figures, judgement,
result record) so they can be tested on their own."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from lem_worker.config import MeasurementCfg
from lem_worker.energy.flags import Flag

BASELINE_MIN_SAMPLES = 5


def power_stability(points: list[tuple[float, float]]) -> Optional[dict[str, float]]:
    """CV and relative drift of a power series [(t, W), ...]; None with fewer than
    BASELINE_MIN_SAMPLES points, a zero span or a non-positive mean.

    cv = population standard deviation / mean; drift = least-squares slope x (t_last - t_first)
    / mean, i.e. the fitted change over the window relative to the mean (signed)."""
    if len(points) < BASELINE_MIN_SAMPLES:
        return None
    ts = [t for t, _ in points]
    ps = [p for _, p in points]
    n = len(ps)
    mean = sum(ps) / n
    span = ts[-1] - ts[0]
    if mean <= 0 or span <= 0:
        return None
    sd = math.sqrt(sum((p - mean) ** 2 for p in ps) / n)
    tm = sum(ts) / n
    var_t = sum((t - tm) ** 2 for t in ts)
    slope = sum((t - tm) * (p - mean) for t, p in points) / var_t if var_t > 0 else 0.0
    return {"samples": float(n), "mean_w": mean, "cv": sd / mean, "drift": slope * span / mean}


@dataclass
class BaselineStep:
    """One idle-baseline measurement of `idle_baseline_s` (the first, or an extension)."""

    start_s: float
    duration_s: float
    gpu_power_w: Optional[float]
    cpu_power_w: Optional[float]
    dram_power_w: Optional[float]
    source: Optional[str]  # the series the gate judged, e.g. "gpu GPU-...", "rapl cpu"
    samples: int
    mean_w: Optional[float]
    cv: Optional[float]
    drift: Optional[float]
    temps: list[float]
    stable: Optional[bool]  # None: not assessable (see reason)
    reason: Optional[str]

    def as_dict(self) -> dict[str, Any]:
        return {"start_s": round(self.start_s, 4), "duration_s": self.duration_s, "gpu_power_w": self.gpu_power_w,
                "cpu_power_w": self.cpu_power_w, "power_cv": self.cv, "power_drift": self.drift,
                "samples": self.samples, "stable": self.stable, "reason": self.reason}


@dataclass
class Baseline:
    duration_s: float
    gpu_power_w: Optional[float]
    cpu_power_w: Optional[float]
    dram_power_w: Optional[float]
    reason: Optional[str]
    steps: list[BaselineStep] = field(default_factory=list)
    cv_max: Optional[float] = None
    drift_max: Optional[float] = None
    max_s: Optional[float] = None
    skip_reason: Optional[str] = None  # why the stability gate was not evaluated

    @property
    def final(self) -> Optional[BaselineStep]:
        return self.steps[-1] if self.steps else None

    @property
    def stable(self) -> Optional[bool]:
        return None if self.final is None else self.final.stable

    def flag(self) -> Optional[Flag]:
        f = self.final
        if f is None or f.stable is not False:
            return None
        total = sum(s.duration_s for s in self.steps)
        return Flag("baseline_unstable", "fail",
                    f"idle baseline unstable after {len(self.steps) - 1} extension(s), {total:.1f} s in all "
                    f"(measurement.idle_baseline_max_s {self.max_s or 0.0:g} s): {f.reason}; "
                    "baseline-adjusted energies use this baseline and are unreliable")

    def as_dict(self) -> dict[str, Any]:
        f = self.final
        temps = f.temps if f else []
        return {
            "duration_s": self.duration_s,
            "gpu_power_w": self.gpu_power_w,
            "cpu_power_w": self.cpu_power_w,
            "dram_power_w": self.dram_power_w,
            "when": "after model load, before warm-up; GPU idle",
            "reason": self.reason,
            "stable": None if f is None else f.stable,
            "stability_reason": self.skip_reason if f is None else f.reason,
            "stability_source": None if f is None else f.source,
            "samples": None if f is None else f.samples,
            "power_cv": None if f is None else f.cv,
            "power_drift": None if f is None else f.drift,
            "cv_max": self.cv_max,
            "drift_max": self.drift_max,
            "temp_start_c": temps[0] if temps else None,
            "temp_end_c": temps[-1] if temps else None,
            "temp_mean_c": sum(temps) / len(temps) if temps else None,
            "extensions": max(0, len(self.steps) - 1),
            "total_s": sum(s.duration_s for s in self.steps),
            "max_s": self.max_s,
            "steps": [s.as_dict() for s in self.steps],
        }


def judge_step(step: BaselineStep, series: list[tuple[str, list[tuple[float, float]], list[float]]],
               level: Optional[float], earlier_levels: list[Optional[float]], cfg: MeasurementCfg) -> None:
    """Sets step.stable/reason and its figures from the power series [(name, [(t, W)], temps)].

    Unstable: CV > cfg.baseline_max_cv, |drift| > cfg.baseline_max_drift (the least stable series
    decides), or `level` (the step's counter-based mean power) more than baseline_max_drift above
    the lowest earlier step's. Fewer than BASELINE_MIN_SAMPLES samples: not judged (stable None)."""
    worst: Optional[tuple[float, str, dict[str, float], list[float]]] = None
    for name, pts, temps in series:
        st = power_stability(pts)
        if st is None:
            step.source, step.samples, step.temps = name, len(pts), temps
            step.reason = (f"{name}: {len(pts)} power sample(s) in {step.duration_s:.2f} s; at least "
                           f"{BASELINE_MIN_SAMPLES} with a positive mean are needed to judge stability")
            return
        score = max(st["cv"] / cfg.baseline_max_cv, abs(st["drift"]) / cfg.baseline_max_drift)
        if worst is None or score > worst[0]:
            worst = (score, name, st, temps)
    assert worst is not None
    _, name, st, temps = worst
    step.source, step.samples, step.temps = name, int(st["samples"]), temps
    step.mean_w, step.cv, step.drift = st["mean_w"], st["cv"], st["drift"]
    problems: list[str] = []
    if st["cv"] > cfg.baseline_max_cv:
        problems.append(f"power CV {st['cv']:.3f} > {cfg.baseline_max_cv:g}")
    if abs(st["drift"]) > cfg.baseline_max_drift:
        problems.append(f"power drift {st['drift']:+.3f} of the mean over the window > {cfg.baseline_max_drift:g}")
    low = min((x for x in earlier_levels if x is not None), default=None)
    if level is not None and low is not None and level > low * (1 + cfg.baseline_max_drift):
        problems.append(f"power rose from {low:.1f} W to {level:.1f} W since an earlier step (not idling)")
    step.stable = not problems
    step.reason = f"{name}: " + "; ".join(problems) if problems else None
