"""Gated idle baseline and warm-up, and the recorded machine state (fake NVML, fake RAPL, fake sysfs).

Power traces are played back by the fake NVML with a virtual clock, so every stability figure has
an exact expected value derived from the trace (not from the implementation)."""
from __future__ import annotations

import math
import os
import tempfile
import threading
import unittest
from typing import Any, Optional

from lem_worker.config import MeasurementCfg, WarmupCfg, parse_config
from lem_worker.energy.meter import Baseline, Meter
from lem_worker.energy.gpu_state import machine_state
from lem_worker.environment import base_environment, cpu_frequency_state
from lem_worker.report import validation_block
from lem_worker.warmup import run_warmup
from lem_worker.metering import meter_with
from tests.fixtures.fake_nvml import (FakeDevice, FakeNvml, Ramp, RealTimeClock, Steady, Steps, Trace, VirtualClock,
                                      uuid)
from tests.test_meter_fake_nvml import gates, make, window, worker_config


def cfg(idle: float, max_s: float, cv: float = 0.05, drift: float = 0.05) -> MeasurementCfg:
    return MeasurementCfg(idle_baseline_s=idle, idle_baseline_max_s=max_s, baseline_max_cv=cv, baseline_max_drift=drift,
                          min_window_s=0, sample_interval_ms=100)


def baseline_of(trace: Trace, c: MeasurementCfg, **dev: Any) -> tuple[VirtualClock, Meter, Baseline]:
    clock, _, meter = make([FakeDevice(uuid(0), trace, **dev)], cfg=c)  # the probe leaves the clock at 0.5 s
    base = meter.idle_baseline(c.idle_baseline_s, threading.Event())
    assert base is not None
    return clock, meter, base


def phase_names(meter: Meter) -> list[str]:
    tl = meter.timeline()
    assert tl is not None
    return [p["name"] for p in tl["phases"]]


class BaselineGateTest(unittest.TestCase):
    def test_steady_baseline_passes_without_extension(self) -> None:
        clock, meter, base = baseline_of(Steady(70.0), cfg(5.0, 30.0), temperature=lambda t: 30.0 + t)
        d = base.as_dict()
        self.assertIs(d["stable"], True)
        self.assertEqual(d["extensions"], 0)
        self.assertAlmostEqual(d["duration_s"], 5.0, places=6)
        self.assertAlmostEqual(d["total_s"], 5.0, places=6)
        self.assertAlmostEqual(d["gpu_power_w"], 70.0, places=6)
        self.assertEqual(d["power_cv"], 0.0)
        self.assertEqual(d["power_drift"], 0.0)
        self.assertEqual(d["samples"], 51)  # 0.5 s .. 5.5 s every 100 ms
        # temperature 30 + t (rounded to whole degrees by NVML): 30.5 -> 30 (banker's), 35.5 -> 36
        self.assertEqual(d["temp_start_c"], 30.0)
        self.assertEqual(d["temp_end_c"], 36.0)
        self.assertAlmostEqual(d["temp_mean_c"], sum(round(30.0 + 0.5 + 0.1 * k) for k in range(51)) / 51, places=9)
        self.assertEqual((d["cv_max"], d["drift_max"], d["max_s"]), (0.05, 0.05, 30.0))
        self.assertEqual(phase_names(meter), ["idle_baseline"])
        w = window(clock, meter, 6.0, 7.0)
        v = validation_block(worker_config(), w, [], baseline=base)
        self.assertNotIn("baseline_unstable", gates(v))
        self.assertIn("baseline_unstable", v["checked"])
        self.assertTrue(v["passed"])

    def test_power_step_60_to_300_is_flagged_even_after_extensions(self) -> None:
        # 60 W until 3 s, then 300 W for good: the first step averages 240 W ("idle" 240 W was the bug);
        # the extensions are flat at 300 W but above the earlier level: the device is not idling.
        clock, meter, base = baseline_of(Steps([(0.0, 60.0), (3.0, 300.0)]), cfg(10.0, 30.0))
        d = base.as_dict()
        self.assertIs(d["stable"], False)
        self.assertEqual(d["extensions"], 2)
        self.assertAlmostEqual(d["total_s"], 30.0, places=6)
        self.assertAlmostEqual(d["steps"][0]["gpu_power_w"], 240.0, places=6)
        self.assertIs(d["steps"][0]["stable"], False)
        # first step: 25 samples at 60 W (0.5..2.9 s), 76 at 300 W (3.0..10.5 s)
        p = 25 / 101
        mean = 60.0 * p + 300.0 * (1 - p)
        self.assertAlmostEqual(d["steps"][0]["power_cv"], 240.0 * math.sqrt(p * (1 - p)) / mean, places=9)
        self.assertAlmostEqual(d["gpu_power_w"], 300.0, places=6)
        self.assertEqual(d["power_cv"], 0.0)
        self.assertIn("power rose from 240.0 W to 300.0 W", d["stability_reason"])
        self.assertEqual(phase_names(meter), ["idle_baseline_discarded", "idle_baseline_discarded", "idle_baseline"])
        w = window(clock, meter, 31.0, 32.0)
        v = validation_block(worker_config(), w, [], baseline=base)
        self.assertEqual(gates(v), {"baseline_unstable": "fail"})
        self.assertFalse(v["passed"])
        self.assertIn("2 extension(s)", v["flags"][0]["detail"])

    def test_step_without_room_to_extend_is_flagged_on_cv(self) -> None:
        _, meter, base = baseline_of(Steps([(0.0, 60.0), (3.0, 300.0)]), cfg(10.0, 0.0))
        d = base.as_dict()
        self.assertEqual((d["stable"], d["extensions"], d["max_s"]), (False, 0, 10.0))
        self.assertAlmostEqual(d["gpu_power_w"], 240.0, places=6)
        self.assertIn("power CV", d["stability_reason"])
        self.assertIn("power drift", d["stability_reason"])
        self.assertEqual(phase_names(meter), ["idle_baseline"])

    def test_slow_drift_settles_after_extensions(self) -> None:
        # 90 W falling linearly to 70 W at 8 s, then flat: step 1 (0.5-5.5 s) drifts by
        # slope x span / mean = -2.5 x 5 / 82.5; step 2 (5.5-10.5 s) still drifts; step 3 is flat.
        clock, meter, base = baseline_of(Ramp(90.0, 70.0, 0.0, 8.0), cfg(5.0, 30.0))
        d = base.as_dict()
        self.assertIs(d["stable"], True)
        self.assertEqual(d["extensions"], 2)
        self.assertAlmostEqual(d["steps"][0]["power_drift"], -2.5 * 5.0 / 82.5, places=9)
        self.assertAlmostEqual(d["steps"][0]["gpu_power_w"], 82.5, places=6)
        self.assertIs(d["steps"][1]["stable"], False)
        self.assertIn("power drift", d["steps"][1]["reason"])
        self.assertAlmostEqual(d["gpu_power_w"], 70.0, places=6)
        self.assertAlmostEqual(d["duration_s"], 5.0, places=6)
        self.assertAlmostEqual(d["total_s"], 15.0, places=6)
        self.assertEqual((d["power_cv"], d["power_drift"]), (0.0, 0.0))
        self.assertIsNone(d["stability_reason"])
        self.assertTrue(any("extended 2 time(s) (settled)" in n for n in meter.notes))
        w = window(clock, meter, 16.0, 17.0)
        v = validation_block(worker_config(), w, [], baseline=base)
        self.assertEqual(v["flags"], [])
        self.assertIn("baseline_unstable", v["checked"])

    def test_thresholds_are_settings(self) -> None:
        # the same drifting trace passes at once with a 20 % drift allowance
        _, _, base = baseline_of(Ramp(90.0, 70.0, 0.0, 8.0), cfg(5.0, 30.0, drift=0.2))
        self.assertEqual((base.as_dict()["stable"], base.as_dict()["extensions"]), (True, 0))

    def test_no_power_source_skips_the_gate_with_reason(self) -> None:
        clock = VirtualClock()
        meter = meter_with(cfg(1.0, 10.0), nvml_module=None, rapl_root="/nonexistent/powercap", clock=clock, threaded=False)
        meter.start()
        base = meter.idle_baseline(1.0, threading.Event())
        assert base is not None
        self.assertIsNone(base.stable)
        w = meter.end(meter.begin("steady"))
        v = validation_block(worker_config(), w, [], baseline=base)
        self.assertIn("no power source", v["skipped"]["baseline_unstable"])
        self.assertNotIn("baseline_unstable", v["checked"])
        self.assertIsNone(base.as_dict()["temp_start_c"])

    def test_no_baseline_skips_the_gate(self) -> None:
        _, _, meter = make([FakeDevice(uuid(0), Steady(70.0))])
        self.assertIsNone(meter.idle_baseline(0.0, threading.Event()))
        v = validation_block(worker_config(), meter.end(meter.begin("steady")), [], baseline=None)
        self.assertIn("idle_baseline_s is 0", v["skipped"]["baseline_unstable"])

    def test_too_few_samples_skips_the_gate(self) -> None:
        _, _, base = baseline_of(Steady(70.0), cfg(0.3, 10.0))  # 4 samples in 0.3 s
        self.assertIsNone(base.stable)
        v = validation_block(worker_config(), _window_after(base), [], baseline=base)
        self.assertIn("at least 5", v["skipped"]["baseline_unstable"])


def _window_after(base: Baseline) -> Any:
    clock = VirtualClock()
    meter = meter_with(cfg(0.0, 0.0), nvml_module=None, rapl_root="/nonexistent", clock=clock, threaded=False)
    return meter.end(meter.begin("steady"))


class FakeRapl:
    """A RAPL package zone whose energy follows a trace on the virtual clock (fake)."""

    available = True
    reason_cpu: Optional[str] = None
    reason_dram: Optional[str] = "RAPL has no dram zone on this CPU"

    def __init__(self, trace: Trace, clock: VirtualClock) -> None:
        self.trace, self.clock = trace, clock

    def poll(self) -> None:
        pass

    def snapshot(self) -> dict[str, Optional[int]]:
        return {"cpu": int(round(self.trace.energy(self.clock.now()) * 1e6)), "dram": None}


class RaplBaselineTest(unittest.TestCase):
    def run_trace(self, trace: Trace) -> Baseline:
        clock = VirtualClock()
        meter = meter_with(cfg(3.0, 6.0), nvml_module=None, rapl_root="/nonexistent", clock=clock, threaded=False)
        meter.devices.rapl = FakeRapl(trace, clock)  # type: ignore[assignment]
        meter.start()
        base = meter.idle_baseline(3.0, threading.Event())
        assert base is not None
        return base

    def test_rapl_only_host_judges_package_power(self) -> None:
        d = self.run_trace(Steady(40.0)).as_dict()
        self.assertEqual((d["stable"], d["stability_source"], d["extensions"]), (True, "rapl cpu package", 0))
        self.assertAlmostEqual(d["cpu_power_w"], 40.0, places=6)
        self.assertAlmostEqual(d["power_cv"], 0.0, places=9)
        self.assertEqual(d["samples"], 30)  # one package-power point per 100 ms poll over 3 s

    def test_rapl_step_is_flagged(self) -> None:
        d = self.run_trace(Steps([(0.0, 20.0), (1.0, 80.0)])).as_dict()
        self.assertIs(d["stable"], False)
        self.assertEqual(d["extensions"], 1)
        self.assertIn("rose", d["stability_reason"])


class WarmupGateTest(unittest.TestCase):
    def warm(self, mode: str, times: list[float], max_iterations: int = 6) -> dict[str, Any]:
        seq = iter(times)
        clock = [0.0]

        def timer() -> float:
            return clock[0]

        def step() -> None:
            clock[0] += next(seq)

        return run_warmup(WarmupCfg(mode=mode, iterations=3, cv_threshold=0.05, window=3, max_iterations=max_iterations),
                          step, threading.Event(), timer=timer)

    def validate(self, warmup: Optional[dict[str, Any]]) -> dict[str, Any]:
        clock, _, meter = make([FakeDevice(uuid(0), Steady(70.0))])
        return validation_block(worker_config(), window(clock, meter, 1.0, 2.0), [], warmup=warmup)

    def test_not_converged_is_flagged_warn(self) -> None:
        w = self.warm("cv", [1.0, 2.0, 1.0, 2.0, 1.0, 2.0])
        self.assertIs(w["converged"], False)
        v = self.validate(w)
        self.assertEqual(gates(v), {"warmup_not_converged": "warn"})
        self.assertIn("max_iterations 6", v["flags"][0]["detail"])
        self.assertIn(f"{w['cv']:.3f}", v["flags"][0]["detail"])
        self.assertTrue(v["passed"])  # warn: the window's energy is measured correctly, its steadiness is in doubt

    def test_converged_passes(self) -> None:
        v = self.validate(self.warm("cv", [3.0, 1.0, 1.0, 1.0]))
        self.assertEqual(v["flags"], [])
        self.assertIn("warmup_not_converged", v["checked"])

    def test_fixed_and_absent_warmups_skip_the_gate(self) -> None:
        self.assertIn("fixed", self.validate(self.warm("fixed", [1.0, 2.0, 3.0]))["skipped"]["warmup_not_converged"])
        self.assertIn("calibration", self.validate(None)["skipped"]["warmup_not_converged"])


class CalibrationUnstableBaselineTest(unittest.TestCase):
    def test_result_document_carries_the_flag_and_the_baseline_record(self) -> None:
        from lem_worker.backends.calibration import run_calibration
        from tests.contract import common_errors

        c = parse_config({
            "run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1},
            "experiment": {"backend": "calibration",
                           "measurement": {"idle_baseline_s": 1.0, "idle_baseline_max_s": 2.0, "min_window_s": 0.3},
                           "calibration": {"matrix_size": 16, "duration_s": 0.3}},
        })
        clock = RealTimeClock()
        # another tenant's load switching on and off every 150 ms: never an idle baseline
        flicker = Steps([(0.15 * i, 60.0 if i % 2 == 0 else 300.0) for i in range(200)])
        nv = FakeNvml([FakeDevice(uuid(0), flicker)], clock)
        doc = run_calibration(c, threading.Event(), nvml_module=nv, clock=clock, probe_s=0.2,
                              rapl_root="/nonexistent", use_env=False)
        self.assertEqual(common_errors(doc, 3), [])
        # (the flicker also trips cross_check and baseline_exceeds_window in the window itself)
        self.assertEqual(gates(doc["validation"])["baseline_unstable"], "fail")
        self.assertFalse(doc["validation"]["passed"])
        b = doc["energy"]["baseline"]
        self.assertEqual((b["stable"], b["extensions"]), (False, 1))
        self.assertGreater(b["power_cv"], 0.05)
        self.assertIn("calibration", doc["validation"]["skipped"]["warmup_not_converged"])
        names = [p["name"] for p in doc["timeline"]["phases"]]
        self.assertEqual(names[:2], ["idle_baseline_discarded", "idle_baseline"])


class GpuMachineStateTest(unittest.TestCase):
    def test_values_recorded_when_nvml_answers(self) -> None:
        _, _, meter = make([FakeDevice(uuid(0), Steady(70.0), pstate=0, app_clocks=(1410, 1593),
                                       default_app_clocks=(1755, 2619), ecc=(1, 0), reasons=lambda t: 0x1)])
        env = meter.environment()["nvml"]
        g = env["gpus"][0]
        self.assertEqual(g["performance_state"], "P0")
        self.assertEqual((g["applications_clock_sm_mhz"], g["applications_clock_mem_mhz"]), (1410, 1593))
        self.assertEqual((g["default_applications_clock_sm_mhz"], g["default_applications_clock_mem_mhz"]), (1755, 2619))
        self.assertEqual((g["ecc_mode_current"], g["ecc_mode_pending"]), (True, False))
        self.assertEqual(g["clock_event_reasons"], 1)
        self.assertIsNone(g["locked_clocks"])
        self.assertEqual(set(g["unavailable"]), {"locked_clocks"})
        self.assertIn("no read-back", g["unavailable"]["locked_clocks"])
        self.assertIn("before the idle baseline", env["read_at"])

    def test_not_supported_gives_null_with_reason(self) -> None:
        _, _, meter = make([FakeDevice(uuid(0), Steady(70.0), pstate=None, app_clocks=None, default_app_clocks=None, ecc=None)])
        g = meter.environment()["nvml"]["gpus"][0]
        for key in ("performance_state", "applications_clock_sm_mhz", "applications_clock_mem_mhz",
                    "default_applications_clock_sm_mhz", "default_applications_clock_mem_mhz",
                    "ecc_mode_current", "ecc_mode_pending"):
            self.assertIsNone(g[key], key)
            self.assertIn("NotSupported", g["unavailable"][key], key)
        self.assertIn("nvmlDeviceGetEccMode", g["unavailable"]["ecc_mode_current"])

    def test_unknown_pstate_and_missing_binding(self) -> None:
        clock = VirtualClock()

        class OldPynvml(FakeNvml):
            nvmlDeviceGetEccMode = None  # an old pynvml without the binding

        nv = OldPynvml([FakeDevice(uuid(0), Steady(70.0), pstate=32)], clock)
        state, why = machine_state(nv, 0)
        self.assertIsNone(state["performance_state"])
        self.assertIn("unknown", why["performance_state"])
        self.assertIsNone(state["ecc_mode_current"])
        self.assertIn("not available in this pynvml", why["ecc_mode_current"])
        self.assertEqual(state["applications_clock_sm_mhz"], 1755)


class GateSettingsTest(unittest.TestCase):
    def parse(self, measurement: dict[str, Any]) -> MeasurementCfg:
        return parse_config({"run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1},
                             "experiment": {"backend": "calibration", "measurement": measurement}}).experiment.measurement

    def test_defaults_match_the_experiment_schema(self) -> None:
        m = self.parse({})
        self.assertEqual((m.idle_baseline_max_s, m.baseline_max_cv, m.baseline_max_drift), (60.0, 0.05, 0.05))
        m = self.parse({"idle_baseline_max_s": 0, "baseline_max_cv": 0.1, "baseline_max_drift": 0.02})
        self.assertEqual((m.idle_baseline_max_s, m.baseline_max_cv, m.baseline_max_drift), (0.0, 0.1, 0.02))

    def test_bad_values_name_the_field(self) -> None:
        from lem_worker.errors import ConfigError

        for key, value in (("baseline_max_cv", 0), ("baseline_max_drift", -0.1), ("idle_baseline_max_s", -1),
                           ("baseline_max_cv", "high")):
            with self.assertRaises(ConfigError) as ctx:
                self.parse({key: value})
            self.assertIn(f"experiment.measurement.{key}", str(ctx.exception))


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


class CpuFrequencyStateTest(unittest.TestCase):
    def test_equal_values_collapse(self) -> None:
        with tempfile.TemporaryDirectory() as root:
            for n in range(4):
                write(os.path.join(root, f"cpu{n}", "cpufreq", "scaling_governor"), "performance")
                write(os.path.join(root, f"cpu{n}", "cpufreq", "scaling_driver"), "acpi-cpufreq")
            os.makedirs(os.path.join(root, "cpuidle"))
            fields, why = cpu_frequency_state(root)
            self.assertEqual(fields["cpu_governor"], "performance")
            self.assertEqual(fields["cpu_scaling_driver"], "acpi-cpufreq")
            self.assertEqual(fields["cpu_governor_by_cpu"], {"performance": "0-3"})
            self.assertEqual(why, {})

    def test_differing_cpus_are_listed_not_guessed(self) -> None:
        with tempfile.TemporaryDirectory() as root:
            for n in range(8):
                gov = "powersave" if n in (4, 5, 7) else "performance"
                write(os.path.join(root, f"cpu{n}", "cpufreq", "scaling_governor"), gov)
                write(os.path.join(root, f"cpu{n}", "cpufreq", "scaling_driver"), "intel_pstate")
            os.makedirs(os.path.join(root, "cpu8"))  # no cpufreq (offline): not counted
            fields, why = cpu_frequency_state(root)
            self.assertIsNone(fields["cpu_governor"])
            self.assertEqual(fields["cpu_governor_by_cpu"], {"performance": "0-3,6", "powersave": "4-5,7"})
            self.assertIn("differ", why["cpu_governor"])
            self.assertEqual(fields["cpu_scaling_driver"], "intel_pstate")
            self.assertNotIn("cpu_scaling_driver", why)

    def test_absent_cpufreq_is_null_with_reason(self) -> None:
        with tempfile.TemporaryDirectory() as root:
            os.makedirs(os.path.join(root, "cpu0"))
            env = base_environment(cpu_root=root)
            for key in ("cpu_governor", "cpu_scaling_driver", "cpu_governor_by_cpu", "cpu_scaling_driver_by_cpu"):
                self.assertIsNone(env[key])
                self.assertIn("cpufreq not exposed", env["unavailable"][key])
        fields, why = cpu_frequency_state("/nonexistent/cpu")
        self.assertIsNone(fields["cpu_governor"])
        self.assertIn("not readable", why["cpu_governor"])


if __name__ == "__main__":
    unittest.main()
