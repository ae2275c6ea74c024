"""Measured windows: synchronised counter reads at window edges, sampled-power cross-check,
idle baseline, RAPL, and the window-level validation flags.

Typical use (see metering.make_meter):

    meter = Meter(measurement_cfg, open_devices(gpu_ids), sync=torch.cuda.synchronize)
    meter.start()                       # open NVML, probe update period, start sampler
    base = meter.idle_baseline(10.0, stop)  # GPU idle, model loaded; gated (energy/baseline.py)
    w = meter.begin("steady"); ...workload...; energy = meter.end(w)
    meter.close()
"""
from __future__ import annotations

import math
import threading
from typing import Any, Callable, Optional

from lem_worker.config import MeasurementCfg
from lem_worker.energy.baseline import Baseline, BaselineStep, judge_step
from lem_worker.energy.clock import Clock
from lem_worker.energy.devices import Devices, MeterOptions
from lem_worker.energy.window import DomainEnergy, WindowEnergy, WindowHandle
from lem_worker.energy.flags import Flag
from lem_worker.energy.nvml import NvmlSession
from lem_worker.energy.rapl import RaplMeter, rapl_delta_j
from lem_worker.energy.sampler import (PowerSampler, compact_timeline, in_window,
                                       integrate_power, power_of, summarize)
from lem_worker.log import log

__all__ = ["Baseline", "BaselineStep", "DomainEnergy", "Flag", "Meter", "WindowEnergy", "WindowHandle"]


class Meter:
    """Windows, baseline and sampling over the devices of one run (devices.py chooses them)."""

    def __init__(self, cfg: MeasurementCfg, devices: Devices, sync: Optional[Callable[[], None]] = None,
                 options: MeterOptions = MeterOptions()) -> None:
        self.cfg = cfg
        self.devices = devices
        self.sync = sync or (lambda: None)
        self.clock: Clock = options.clock
        self.probe_s = options.probe_s
        self.threaded = options.threaded
        self.sampler_enabled = options.sampler_enabled
        self.align_edges = options.align_edges
        self.alignment_misses = 0
        self.notes: list[str] = []
        self.update_period_s: Optional[float] = None
        self.interval_s = cfg.sample_interval_ms / 1000.0
        self.sampler: Optional[PowerSampler] = None
        self.t_origin = self.clock.now()
        self.phases: list[dict[str, Any]] = []
        self._nvml_env: Optional[dict[str, Any]] = None

    @property
    def session(self) -> Optional[NvmlSession]:
        """The NVML GPUs, or None (then gpu_reason says why)."""
        return self.devices.gpus

    @property
    def gpu_reason(self) -> Optional[str]:
        return self.devices.gpu_reason

    @property
    def rapl(self) -> RaplMeter:
        return self.devices.rapl

    @property
    def has_gpu(self) -> bool:
        return self.session is not None and bool(self.session.gpus)

    def start(self) -> None:
        if self.has_gpu:
            assert self.session is not None
            self.notes.extend(self.session.notes)
            # machine state (P-state, clocks, ECC, limits) as the measurement starts: after model load, before the baseline
            self._nvml_env = self.session.environment()
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
        self.devices.close()

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
        """Idle power before the warm-up, gated on stability.

        Measures `seconds`; when the power series of that step is unstable (CV above
        measurement.baseline_max_cv, |drift| above measurement.baseline_max_drift, or its mean more
        than baseline_max_drift above an earlier step's: power rose, the device is not idling), it
        measures another step of `seconds`, up to floor(idle_baseline_max_s / seconds) steps in all. The
        baseline power is that of the last step; earlier steps are recorded and their timeline
        phases renamed idle_baseline_discarded. The series judged is the sampled power of each
        measured GPU (the least stable one decides) or, without a GPU, RAPL package power read
        in chunks during the wait."""
        if seconds <= 0:
            return None
        cfg = self.cfg
        max_s = max(cfg.idle_baseline_max_s, seconds)
        if not self.has_gpu and not self.rapl.available:
            return Baseline(0.0, None, None, None, "not run: no NVML GPU and no RAPL to measure",
                            cv_max=cfg.baseline_max_cv, drift_max=cfg.baseline_max_drift, max_s=max_s,
                            skip_reason="no power source (no NVML GPU and no RAPL): baseline not measured")
        max_steps = max(1, int(math.floor(max_s / seconds + 1e-9)))  # counted, so edge overheads never cost a step
        steps: list[BaselineStep] = []
        phase_idx: list[int] = []
        spent = 0.0
        while True:
            log(f"idle baseline: {seconds:.1f}s" + (f" (extension {len(steps)})" if steps else ""))
            h = self.begin("idle_baseline")
            rapl_points = self._idle_wait(seconds, stop)
            w = self.end(h)
            phase_idx.append(len(self.phases) - 1)
            step = self._baseline_step(w, rapl_points, steps)
            steps.append(step)
            spent += step.duration_s
            if stop.is_set() or step.stable is not False:
                break
            if len(steps) >= max_steps:
                log(f"idle baseline unstable after {spent:.1f}s (max {max_s:g}s): {step.reason}")
                break
            log(f"idle baseline unstable ({step.reason}): extending by {seconds:.1f}s")
        for i in phase_idx[:-1]:
            self.phases[i]["name"] = "idle_baseline_discarded"
        if len(steps) > 1:
            self.notes.append(f"idle baseline extended {len(steps) - 1} time(s) "
                              f"({'settled' if steps[-1].stable else 'did not settle'}); "
                              f"the baseline power is that of the last {steps[-1].duration_s:.1f} s")
        f = steps[-1]
        return Baseline(f.duration_s, f.gpu_power_w, f.cpu_power_w, f.dram_power_w, None, steps=steps,
                        cv_max=cfg.baseline_max_cv, drift_max=cfg.baseline_max_drift, max_s=max_s)

    def _idle_wait(self, seconds: float, stop: threading.Event) -> list[tuple[float, float]]:
        """Wait `seconds` (or until stopped); without a GPU, return RAPL package power in chunks."""
        rapl_series = not self.has_gpu and self.rapl.available
        chunk = max(self.interval_s, 0.25) if rapl_series else seconds
        points: list[tuple[float, float]] = []
        last_t = self.clock.now()
        last_uj = self.rapl.snapshot().get("cpu") if rapl_series else None
        end_t = last_t + seconds
        while not stop.is_set():
            left = end_t - self.clock.now()
            if left <= 1e-9:
                break
            step = min(chunk, left)
            if self.threaded:
                stop.wait(step)
            else:
                self.clock.sleep(min(self.interval_s, step))
                if self.sampler is not None:
                    self.sampler.poll_once()
            if rapl_series:
                t = self.clock.now()
                uj = self.rapl.snapshot().get("cpu")
                if last_uj is not None and uj is not None and t > last_t:
                    points.append(((t + last_t) / 2, (uj - last_uj) / 1e6 / (t - last_t)))
                last_t, last_uj = t, uj
        return points

    def _baseline_step(self, w: WindowEnergy, rapl_points: list[tuple[float, float]],
                       earlier: list[BaselineStep]) -> BaselineStep:
        d = w.duration_s

        def p(x: DomainEnergy) -> Optional[float]:
            return None if x.joules is None or d <= 0 else x.joules / d

        cfg = self.cfg
        series: list[tuple[str, list[tuple[float, float]], list[float]]] = []
        if self.session is not None and self.sampler is not None:
            snap = self.sampler.snapshot()
            for g in self.session.gpus:
                s_in = in_window(snap.get(g.uuid, []), w.t0, w.t1)
                pts = [(s.t, pw) for s in s_in for pw in [power_of(s)] if pw is not None]
                series.append((f"gpu {g.uuid}", pts, [s.temp_c for s in s_in if s.temp_c is not None]))
        elif self.session is None and rapl_points:
            series.append(("rapl cpu package", rapl_points, []))
        step = BaselineStep(w.t0 - self.t_origin, d, p(w.gpu), p(w.cpu), p(w.dram), None, 0, None, None, None,
                            [], None, None)
        if not series:
            step.reason = ("no power series to judge (the sampler is off)" if self.session is not None
                           else "no power series to judge (RAPL gave no readings during the baseline)")
            return step
        level = step.gpu_power_w if self.session is not None else step.cpu_power_w
        lows = [e.gpu_power_w if self.session is not None else e.cpu_power_w for e in earlier]
        judge_step(step, series, level, lows, self.cfg)
        return step

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
            env["nvml"] = self._nvml_env if self._nvml_env is not None else self.session.environment()
            env["nvml"]["read_at"] = ("meter start: after model load, before the idle baseline"
                                      if self._nvml_env is not None else "end of run")
        return env
