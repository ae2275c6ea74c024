"""Background power/thermal sampler.

A daemon thread that wakes every `interval_s` (never faster than the device's update period),
reads one GpuSample per measured GPU and also polls RAPL so counter wraps are caught. It sleeps
on an Event between polls (no busy-waiting). `poll_once` is public so tests can drive it with a
virtual clock.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from lem_worker.energy.clock import Clock
from lem_worker.energy.nvml import POWER_REASONS, THERMAL_REASONS, GpuSample, NvmlSession


class PowerSampler:
    def __init__(self, session: Optional[NvmlSession], clock: Clock, interval_s: float,
                 extra_poll: Optional[Callable[[], None]] = None) -> None:
        self.session = session
        self.clock = clock
        self.interval_s = interval_s
        self.extra_poll = extra_poll
        self.samples: dict[str, list[GpuSample]] = {g.uuid: [] for g in (session.gpus if session else [])}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self.errors = 0
        self._last_t: Optional[float] = None
        self.cpu_s = 0.0  # CPU time the sampler thread used (its cost to the host)

    def poll_once(self) -> None:
        t = self.clock.now()
        if t == self._last_t:
            return  # already sampled at this instant (window edges in driven mode)
        self._last_t = t
        if self.session is not None:
            for gpu in self.session.gpus:
                try:
                    s = self.session.sample(gpu, t)
                except Exception:  # noqa: BLE001
                    self.errors += 1
                    continue
                with self._lock:
                    self.samples[gpu.uuid].append(s)
        if self.extra_poll is not None:
            try:
                self.extra_poll()
            except Exception:  # noqa: BLE001
                self.errors += 1

    def _loop(self) -> None:
        cpu0 = time.thread_time()
        try:
            self._run()
        finally:
            self.cpu_s += time.thread_time() - cpu0

    def _run(self) -> None:
        next_t = self.clock.now()
        while not self._stop.is_set():
            self.poll_once()
            next_t += self.interval_s
            delay = next_t - self.clock.now()
            if delay < 0:  # fell behind: skip missed ticks rather than bursting
                next_t = self.clock.now()
                delay = 0.0
            if self._stop.wait(max(delay, 0.001)):
                break

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="lem-power-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def snapshot(self) -> dict[str, list[GpuSample]]:
        with self._lock:
            return {k: list(v) for k, v in self.samples.items()}


def power_of(s: GpuSample) -> Optional[float]:
    return s.power_instant_w if s.power_instant_w is not None else s.power_avg_w


def in_window(samples: list[GpuSample], t0: float, t1: float) -> list[GpuSample]:
    return [s for s in samples if t0 <= s.t <= t1]


def integrate_power(samples: list[GpuSample], t0: float, t1: float) -> Optional[float]:
    """Joules over [t0, t1] from the piecewise-linear power trace (trapezoid), held constant
    before the first and after the last sample inside the window. None without samples."""
    traced = [(s.t, power_of(s)) for s in samples]
    pts: list[tuple[float, float]] = [(t, p) for t, p in traced if p is not None]
    if not pts or t1 <= t0:
        return None
    pts.sort()
    # include the nearest samples just outside the window for interpolation at the edges
    inside = [(t, p) for t, p in pts if t0 <= t <= t1]
    before = [(t, p) for t, p in pts if t < t0]
    after = [(t, p) for t, p in pts if t > t1]

    def interp(t: float, a: tuple[float, float], b: tuple[float, float]) -> float:
        if b[0] == a[0]:
            return a[1]
        return a[1] + (b[1] - a[1]) * (t - a[0]) / (b[0] - a[0])

    seq = list(inside)
    if before and seq:
        seq.insert(0, (t0, interp(t0, before[-1], seq[0])))
    elif before and after:
        seq = [(t0, interp(t0, before[-1], after[0])), (t1, interp(t1, before[-1], after[0]))]
    elif not seq:
        nearest = before[-1] if before else after[0]
        return nearest[1] * (t1 - t0)
    if after and seq[-1][0] < t1:
        seq.append((t1, interp(t1, seq[-1], after[0])))
    if seq[0][0] > t0:
        seq.insert(0, (t0, seq[0][1]))
    if seq[-1][0] < t1:
        seq.append((t1, seq[-1][1]))
    total = 0.0
    for (ta, pa), (tb, pb) in zip(seq, seq[1:]):
        total += (tb - ta) * (pa + pb) / 2.0
    return total


@dataclass
class SampleSummary:
    count: int
    power_mean_w: Optional[float]
    power_peak_w: Optional[float]
    temp_start_c: Optional[float]
    temp_end_c: Optional[float]
    temp_out_of_range_frac: Optional[float]
    thermal_throttle_frac: Optional[float]
    power_throttle_frac: Optional[float]


def summarize(samples: list[GpuSample], temp_range: tuple[float, float] = (20.0, 95.0)) -> SampleSummary:
    powers = [p for p in (power_of(s) for s in samples) if p is not None]
    temps = [s.temp_c for s in samples if s.temp_c is not None]
    reasons = [s.clock_reasons for s in samples if s.clock_reasons is not None]
    return SampleSummary(
        len(samples),
        sum(powers) / len(powers) if powers else None,
        max(powers) if powers else None,
        temps[0] if temps else None,
        temps[-1] if temps else None,
        sum(1 for t in temps if t < temp_range[0] or t > temp_range[1]) / len(temps) if temps else None,
        sum(1 for r in reasons if r & THERMAL_REASONS) / len(reasons) if reasons else None,
        sum(1 for r in reasons if r & POWER_REASONS) / len(reasons) if reasons else None,
    )


def compact_timeline(samples: list[GpuSample], t_origin: float, max_points: int = 1200) -> dict[str, Any]:
    """Column-wise timeline; averaged into buckets when longer than max_points."""
    if len(samples) > max_points:
        size = -(-len(samples) // max_points)
        buckets = [samples[i:i + size] for i in range(0, len(samples), size)]
    else:
        buckets = [[s] for s in samples]

    def mean(vals: list[Optional[float]]) -> Optional[float]:
        v = [x for x in vals if x is not None]
        return round(sum(v) / len(v), 3) if v else None

    def ormask(vals: list[Optional[int]]) -> Optional[int]:
        v = [x for x in vals if x is not None]
        out = 0
        for x in v:
            out |= x
        return out if v else None

    return {
        "t_s": [round(b[0].t - t_origin, 4) for b in buckets],
        "power_instant_w": [mean([s.power_instant_w for s in b]) for b in buckets],
        "power_avg_w": [mean([s.power_avg_w for s in b]) for b in buckets],
        "temp_c": [mean([s.temp_c for s in b]) for b in buckets],
        "sm_clock_mhz": [mean([s.sm_clock_mhz for s in b]) for b in buckets],
        "mem_used_mib": [mean([s.mem_used_mib for s in b]) for b in buckets],
        "clock_reasons": [ormask([s.clock_reasons for s in b]) for b in buckets],
        "bucket_size": len(buckets[0]) if buckets else 1,
    }
