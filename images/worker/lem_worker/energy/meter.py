"""Measured windows: synchronised counter reads at window edges, sampled-power cross-check,
idle baseline, RAPL, and the window-level validation flags.

Typical use (see runner):

    meter = Meter(measurement_cfg, sync=torch.cuda.synchronize)
    meter.start()                       # open NVML, probe update period, start sampler
    base = meter.idle_baseline(10.0)    # GPU idle, model loaded
    w = meter.begin("steady"); ...workload...; energy = meter.end(w)
    meter.close()
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from lem_worker.config import MeasurementCfg
from lem_worker.energy.clock import Clock, RealClock
from lem_worker.energy.nvml import NvmlSession, import_pynvml
from lem_worker.energy.rapl import DEFAULT_ROOT, RaplMeter, rapl_delta_j
from lem_worker.energy.sampler import (PowerSampler, SampleSummary, compact_timeline, in_window,
                                       integrate_power, summarize)
from lem_worker.log import log


@dataclass
class Flag:
    gate: str
    severity: str  # "fail" or "warn"
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"gate": self.gate, "severity": self.severity, "detail": self.detail}


@dataclass
class DomainEnergy:
    joules: Optional[float]
    source: Optional[str]
    reason: Optional[str]

    def as_reading(self) -> dict[str, Any]:
        if self.joules is None:
            return {"joules": None, "source": None, "reason": self.reason or "not measured"}
        return {"joules": max(0.0, self.joules), "source": self.source, "reason": None}


@dataclass
class WindowHandle:
    name: str
    t0: float
    gpu_mj: dict[str, Optional[int]]
    rapl: dict[str, Optional[int]]


@dataclass
class WindowEnergy:
    name: str
    t0: float
    t1: float
    gpu: DomainEnergy
    cpu: DomainEnergy
    dram: DomainEnergy
    per_gpu: list[dict[str, Any]]
    cross_check: Optional[dict[str, Any]]
    summary: Optional[SampleSummary]
    flags: list[Flag] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.t1 - self.t0

    def total_j(self) -> Optional[float]:
        vals = [d.joules for d in (self.gpu, self.cpu, self.dram) if d.joules is not None]
        return sum(vals) if vals else None


@dataclass
class Baseline:
    duration_s: float
    gpu_power_w: Optional[float]
    cpu_power_w: Optional[float]
    dram_power_w: Optional[float]
    reason: Optional[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "gpu_power_w": self.gpu_power_w,
            "cpu_power_w": self.cpu_power_w,
            "dram_power_w": self.dram_power_w,
            "when": "after model load, before warm-up; GPU idle",
            "reason": self.reason,
        }


class Meter:
    def __init__(self, cfg: MeasurementCfg, sync: Optional[Callable[[], None]] = None,
                 nvml_module: Any = "auto", rapl_root: str = DEFAULT_ROOT, clock: Optional[Clock] = None,
                 probe_s: float = 1.0, torch_uuids: Optional[list[str]] = None, threaded: bool = True,
                 visible: Optional[str] = None, use_env: bool = True, sampler_enabled: bool = True,
                 align_edges: bool = True) -> None:
        self.cfg = cfg
        self.sync = sync or (lambda: None)
        self.clock = clock or RealClock()
        self.probe_s = probe_s
        self.threaded = threaded
        self.sampler_enabled = sampler_enabled
        self.align_edges = align_edges
        self.alignment_misses = 0
        self.notes: list[str] = []
        self.rapl = RaplMeter(rapl_root)
        self.session: Optional[NvmlSession] = None
        self.gpu_reason: Optional[str] = None
        if nvml_module == "auto":
            nvml_module, self.gpu_reason = import_pynvml()
        elif nvml_module is None:
            self.gpu_reason = "no NVML: disabled"
        if nvml_module is not None:
            self.session = NvmlSession(nvml_module, cfg.gpu_ids, visible=visible, torch_uuids=torch_uuids, use_env=use_env)
            if self.session.reason is not None:
                self.gpu_reason = self.session.reason
                self.session.close()
                self.session = None
        self.update_period_s: Optional[float] = None
        self.interval_s = cfg.sample_interval_ms / 1000.0
        self.sampler: Optional[PowerSampler] = None
        self.t_origin = self.clock.now()
        self.phases: list[dict[str, Any]] = []

    @property
    def has_gpu(self) -> bool:
        return self.session is not None and bool(self.session.gpus)

    def start(self) -> None:
        if self.has_gpu:
            assert self.session is not None
            self.notes.extend(self.session.notes)
            self.update_period_s = self.session.probe_update_period(self.clock, self.probe_s)
            if self.update_period_s is not None and self.update_period_s > self.interval_s:
                self.notes.append(
                    f"sample interval raised from {self.interval_s * 1000:.0f} ms to the measured counter update period "
                    f"{self.update_period_s * 1000:.0f} ms")
                self.interval_s = self.update_period_s
            log(f"NVML: {len(self.session.gpus)} GPU(s); update period "
                f"{'unknown' if self.update_period_s is None else f'{self.update_period_s * 1000:.0f} ms'}; "
                f"sampling every {self.interval_s * 1000:.0f} ms")
        if self.sampler_enabled and (self.has_gpu or self.rapl.available):
            self.sampler = PowerSampler(self.session, self.clock, self.interval_s,
                                        extra_poll=self.rapl.poll if self.rapl.available else None)
            if self.threaded:
                self.sampler.start()
        self.t_origin = self.clock.now()

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.session is not None:
            self.session.close()

    # -- windows ------------------------------------------------------------------------
    def _await_tick(self) -> dict[str, Optional[int]]:
        """Read the GPU counters right after they next update (edge alignment).

        The counter only changes every update period (~100 ms); reading it at an arbitrary moment
        returns a value up to one period old. Waiting (sleeping in 2 ms steps) for the next change
        makes the reading correspond to 'now' to within the poll step, at both window edges."""
        assert self.session is not None
        first = self.session.read_energy_mj()
        if not self.align_edges or self.update_period_s is None:
            return first
        ref = next((g.uuid for g in self.session.gpus if first.get(g.uuid) is not None), None)
        if ref is None:
            return first
        deadline = self.clock.now() + 1.5 * self.update_period_s
        while self.clock.now() < deadline:
            self.clock.sleep(0.002)
            now = self.session.read_energy_mj()
            if now.get(ref) != first.get(ref):
                return now
        self.alignment_misses += 1
        return self.session.read_energy_mj()

    def begin(self, name: str) -> WindowHandle:
        self.sync()
        gpu = self._await_tick() if self.session else {}
        rapl = self.rapl.snapshot()
        t0 = self.clock.now()
        if self.sampler is not None and not self.threaded:
            self.sampler.poll_once()
        return WindowHandle(name, t0, gpu, rapl)

    def end(self, h: WindowHandle) -> WindowEnergy:
        self.sync()
        gpu_end = self._await_tick() if self.session else {}
        if self.sampler is not None and not self.threaded:
            self.sampler.poll_once()
        t1 = self.clock.now()
        rapl_end = self.rapl.snapshot()
        self.phases.append({"name": h.name, "start_s": round(h.t0 - self.t_origin, 4), "end_s": round(t1 - self.t_origin, 4)})
        flags: list[Flag] = []
        samples = self.sampler.snapshot() if self.sampler is not None else {}
        per_gpu: list[dict[str, Any]] = []
        gpu_total: Optional[float] = 0.0
        methods: set[str] = set()
        gpu_reason: Optional[str] = None
        counter_j_sum = 0.0
        integral_sum: Optional[float] = 0.0
        all_counter = True
        window_samples = []
        if self.session is None:
            gpu_total = None
            gpu_reason = self.gpu_reason
        else:
            for g in self.session.gpus:
                s_in = samples.get(g.uuid, [])
                window_samples.extend(in_window(s_in, h.t0, t1))
                integral = integrate_power(s_in, h.t0, t1)
                a, b = h.gpu_mj.get(g.uuid), gpu_end.get(g.uuid)
                entry: dict[str, Any] = {"uuid": g.uuid, "name": g.name, "logical_index": g.logical_index,
                                         "counter_start_mj": a, "counter_end_mj": b, "integrated_j": integral}
                joules: Optional[float]
                if a is not None and b is not None:
                    if b < a:
                        joules = None
                        gpu_reason = (f"NVML energy counter of {g.uuid} went backwards ({a} -> {b} mJ; driver reload?): "
                                      f"window '{h.name}' invalid")
                        flags.append(Flag("counter_reset", "fail", gpu_reason))
                        entry["method"] = "nvml_total_energy"
                    else:
                        joules = (b - a) / 1000.0
                        entry["method"] = "nvml_total_energy"
                        methods.add("nvml_total_energy")
                        counter_j_sum += joules
                else:
                    all_counter = False
                    joules = integral
                    entry["method"] = "nvml_power_integration"
                    if joules is None:
                        gpu_reason = f"GPU {g.uuid}: no energy counter and no power samples in window '{h.name}'"
                    else:
                        methods.add("nvml_power_integration")
                entry["joules"] = joules
                per_gpu.append(entry)
                if joules is None or gpu_total is None:
                    gpu_total = None
                else:
                    gpu_total += joules
                if integral is None or integral_sum is None:
                    integral_sum = None
                else:
                    integral_sum += integral
        cross: Optional[dict[str, Any]] = None
        if self.session is not None and all_counter and gpu_total is not None:
            if integral_sum is None:
                cross = {"counter_j": counter_j_sum, "integrated_j": None, "rel_diff": None,
                         "threshold": self.cfg.cross_check_threshold, "agreed": None,
                         "reason": "no power samples in the window"}
            else:
                rel = abs(counter_j_sum - integral_sum) / counter_j_sum if counter_j_sum > 0 else (0.0 if integral_sum == 0 else None)
                agreed = rel is not None and rel <= self.cfg.cross_check_threshold
                cross = {"counter_j": counter_j_sum, "integrated_j": integral_sum, "rel_diff": rel,
                         "threshold": self.cfg.cross_check_threshold, "agreed": agreed, "reason": None}
                if not agreed:
                    flags.append(Flag("cross_check", "warn",
                                      f"window '{h.name}': counter {counter_j_sum:.3f} J vs integrated sampled power "
                                      f"{integral_sum:.3f} J (relative difference "
                                      f"{'n/a' if rel is None else f'{rel:.3f}'} > {self.cfg.cross_check_threshold})"))
        summary = summarize(window_samples) if self.session is not None else None
        if summary is not None and gpu_total is not None and gpu_total == 0 and (summary.power_mean_w or 0) > 0:
            flags.append(Flag("zero_energy_with_power", "fail",
                              f"window '{h.name}': GPU energy is 0 J while sampled power averages {summary.power_mean_w:.1f} W"))
        gpu = DomainEnergy(gpu_total, "+".join(sorted(methods)) or None, gpu_reason if gpu_total is None else None)
        cpu = DomainEnergy(rapl_delta_j(h.rapl, rapl_end, "cpu"), "rapl", self.rapl.reason_cpu)
        dram = DomainEnergy(rapl_delta_j(h.rapl, rapl_end, "dram"), "rapl", self.rapl.reason_dram)
        return WindowEnergy(h.name, h.t0, t1, gpu, cpu, dram, per_gpu, cross, summary, flags)

    def idle_baseline(self, seconds: float, stop: threading.Event) -> Optional[Baseline]:
        if seconds <= 0:
            return None
        if not self.has_gpu and not self.rapl.available:
            return Baseline(0.0, None, None, None, "not run: no NVML GPU and no RAPL to measure")
        log(f"idle baseline: {seconds:.1f}s")
        h = self.begin("idle_baseline")
        if self.threaded:
            stop.wait(seconds)
        else:
            end_t = self.clock.now() + seconds
            while self.clock.now() < end_t and not stop.is_set():
                self.clock.sleep(min(self.interval_s, end_t - self.clock.now()))
                if self.sampler is not None:
                    self.sampler.poll_once()
        w = self.end(h)
        d = w.duration_s

        def p(x: DomainEnergy) -> Optional[float]:
            return None if x.joules is None or d <= 0 else x.joules / d

        return Baseline(d, p(w.gpu), p(w.cpu), p(w.dram), None)

    # -- result blocks ----------------------------------------------------------------------
    def timeline(self) -> Optional[dict[str, Any]]:
        if self.sampler is None or not self.has_gpu:
            return None
        assert self.session is not None
        snap = self.sampler.snapshot()
        return {
            "interval_ms": round(self.interval_s * 1000, 3),
            "update_period_ms": None if self.update_period_s is None else round(self.update_period_s * 1000, 3),
            "power_source": "field 186 POWER_INSTANT" if all(g.has_instant_power for g in self.session.gpus)
            else "nvmlDeviceGetPowerUsage (1-s average on Ampere+)",
            "gpus": [{"uuid": g.uuid, "logical_index": g.logical_index, **compact_timeline(snap.get(g.uuid, []), self.t_origin)}
                     for g in self.session.gpus],
            "phases": list(self.phases),
        }

    def environment(self) -> dict[str, Any]:
        env: dict[str, Any] = {"nvml": None, "nvml_reason": self.gpu_reason, "rapl_available": self.rapl.available}
        if self.session is not None:
            env["nvml"] = self.session.environment()
        return env
