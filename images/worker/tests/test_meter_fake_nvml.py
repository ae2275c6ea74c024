"""Energy measurement against a fake NVML playing designed power traces: exact energies and flags."""
from __future__ import annotations

import threading
import time
import unittest
from typing import Any, Optional

from lem_worker.config import MeasurementCfg, parse_config
from lem_worker.energy.meter import Meter, WindowEnergy
from lem_worker.energy.nvml import NvmlSession, parse_visible_devices
from lem_worker.energy.sampler import PowerSampler
from lem_worker.report import MetricSet, energy_block, validation_block
from lem_worker.metering import meter_with
from lem_worker.energy.devices import DeviceChoice, MeterOptions, open_devices
from tests.fixtures.fake_nvml import (FakeDevice, FakeNvml, Ramp, RealTimeClock, Steady, Steps, VirtualClock, uuid)

CFG = MeasurementCfg(idle_baseline_s=0, min_window_s=0, sample_interval_ms=100, cross_check_threshold=0.05)


def make(devices: list[FakeDevice], cfg: MeasurementCfg = CFG, visible: Optional[str] = None,
         probe_s: float = 0.5, align: bool = False) -> tuple[VirtualClock, FakeNvml, Meter]:
    clock = VirtualClock()
    nv = FakeNvml(devices, clock)
    found = open_devices(cfg.gpu_ids, DeviceChoice(nvml_module=nv, rapl_root="/nonexistent/powercap", visible=visible,
                                                     use_env=False))
    meter = Meter(cfg, found, options=MeterOptions(clock=clock, probe_s=probe_s, threaded=False, align_edges=align))
    meter.start()
    return clock, nv, meter


def window(clock: VirtualClock, meter: Meter, start: float, end: float, step: float = 0.1) -> WindowEnergy:
    clock.advance_to(start)
    h = meter.begin("steady")
    assert meter.sampler is not None
    while clock.now() < end - 1e-9:
        clock.sleep(step)
        meter.sampler.poll_once()
    return meter.end(h)


def worker_config(min_window_s: float = 0.0) -> Any:
    return parse_config({
        "run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1},
        "experiment": {"backend": "calibration", "measurement": {"min_window_s": min_window_s}},
    })


def gates(v: dict[str, Any]) -> dict[str, str]:
    return {f["gate"]: f["severity"] for f in v["flags"]}


class SteadyAndRampTest(unittest.TestCase):
    def test_steady_trace_exact_energy_and_cross_check(self) -> None:
        clock, nv, meter = make([FakeDevice(uuid(0), Steady(300.0))])
        self.assertAlmostEqual(meter.update_period_s or 0, 0.1, delta=0.0045)
        self.assertAlmostEqual(meter.interval_s, 0.1)
        w = window(clock, meter, 1.0, 6.0)
        self.assertEqual(w.gpu.joules, 1500.0)
        self.assertEqual(w.gpu.source, "nvml_total_energy")
        assert w.cross_check is not None
        self.assertAlmostEqual(w.cross_check["integrated_j"], 1500.0, places=6)
        self.assertAlmostEqual(w.cross_check["rel_diff"], 0.0, places=9)
        self.assertTrue(w.cross_check["agreed"])
        assert w.summary is not None
        self.assertAlmostEqual(w.summary.power_mean_w or 0, 300.0)
        v = validation_block(worker_config(), w, [])
        self.assertTrue(v["passed"])
        self.assertEqual(v["flags"], [])
        self.assertIn("cross_check", v["checked"])

    def test_ramp_trace_exact_energy(self) -> None:
        clock, _, meter = make([FakeDevice(uuid(0), Ramp(100.0, 400.0, 1.0, 6.0))])
        w = window(clock, meter, 1.0, 6.0)
        self.assertAlmostEqual(w.gpu.joules or 0, 1250.0, places=6)
        assert w.cross_check is not None
        self.assertAlmostEqual(w.cross_check["integrated_j"], 1250.0, places=6)
        assert w.summary is not None
        self.assertAlmostEqual(w.summary.power_peak_w or 0, 400.0)

    def test_cross_check_disagreement_is_flagged(self) -> None:
        # 1 s spike between samples: the counter sees it, 0.5 s sampling partly misses it
        dev = FakeDevice(uuid(0), Steps([(0.0, 100.0), (2.05, 600.0), (2.45, 100.0)]))
        clock, _, meter = make([dev])
        w = window(clock, meter, 1.0, 4.0, step=0.5)
        self.assertAlmostEqual(w.gpu.joules or 0, 100.0 * 3 + 500.0 * 0.4, places=6)
        assert w.cross_check is not None
        self.assertFalse(w.cross_check["agreed"])
        self.assertEqual(gates(validation_block(worker_config(), w, [])).get("cross_check"), "warn")


class EdgeAlignmentTest(unittest.TestCase):
    def test_unaligned_edges_are_off_by_counter_quantisation(self) -> None:
        clock, _, meter = make([FakeDevice(uuid(0), Steady(300.0))])
        w = window(clock, meter, 1.037, 2.561, step=0.001)
        self.assertAlmostEqual(w.gpu.joules or 0, 300.0 * 1.5, places=6)  # counter ticks 1.0 .. 2.5
        self.assertAlmostEqual(w.duration_s, 1.524, places=6)  # but the window lasted 1.524 s

    def test_aligned_edges_match_energy_and_duration(self) -> None:
        clock, _, meter = make([FakeDevice(uuid(0), Steady(300.0))], align=True)
        w = window(clock, meter, 1.037, 2.561, step=0.001)
        self.assertAlmostEqual(w.duration_s, 1.5, places=6)  # begins at the 1.1 tick, ends at the 2.6 tick
        self.assertAlmostEqual(w.gpu.joules or 0, 300.0 * w.duration_s, places=6)
        self.assertEqual(meter.alignment_misses, 0)


class FlagsTest(unittest.TestCase):
    def test_throttle_and_temperature(self) -> None:
        dev = FakeDevice(uuid(0), Steady(350.0),
                         reasons=lambda t: 0x20 if 2.0 <= t < 3.0 else (0x4 if 4.0 <= t < 4.5 else 0x1),
                         temperature=lambda t: 97.0 if t >= 5.0 else 60.0)
        clock, _, meter = make([dev])
        w = window(clock, meter, 1.0, 6.0)
        s = w.summary
        assert s is not None
        self.assertEqual(s.count, 51)
        self.assertAlmostEqual(s.thermal_throttle_frac or 0, 10 / 51)
        self.assertAlmostEqual(s.power_throttle_frac or 0, 5 / 51)
        self.assertAlmostEqual(s.temp_out_of_range_frac or 0, 11 / 51)
        self.assertEqual((s.temp_start_c, s.temp_end_c), (60.0, 97.0))
        g = gates(validation_block(worker_config(), w, []))
        self.assertEqual(g, {"thermal_throttling": "warn", "power_throttling": "warn", "temperature_range": "fail"})

    def test_counter_reset_invalidates_window(self) -> None:
        clock, _, meter = make([FakeDevice(uuid(0), Steady(200.0), reset_at_s=3.0)])
        w = window(clock, meter, 1.0, 6.0)
        self.assertIsNone(w.gpu.joules)
        self.assertIn("backwards", w.gpu.reason or "")
        reading = w.gpu.as_reading()
        self.assertIsNone(reading["joules"])
        self.assertIsNotNone(reading["reason"])
        v = validation_block(worker_config(), w, [])
        self.assertFalse(v["passed"])
        self.assertEqual(gates(v).get("counter_reset"), "fail")

    def test_no_counter_integrates_sampled_power(self) -> None:
        clock, _, meter = make([FakeDevice(uuid(0), Steady(250.0), has_counter=False)])
        self.assertFalse(meter.session.gpus[0].has_energy_counter)  # type: ignore[union-attr]
        w = window(clock, meter, 1.0, 5.0)
        self.assertAlmostEqual(w.gpu.joules or 0, 1000.0, places=6)
        self.assertEqual(w.gpu.source, "nvml_power_integration")
        self.assertIsNone(w.cross_check)
        self.assertTrue(any("integrates sampled power" in n for n in meter.session.gpus[0].notes))  # type: ignore[union-attr]

    def test_zero_energy_with_power(self) -> None:
        # counter updates only every 20 s: a 2 s window sees no change while power is 300 W
        clock, _, meter = make([FakeDevice(uuid(0), Steady(300.0), update_period_us=20_000_000)])
        self.assertIsNone(meter.update_period_s)
        w = window(clock, meter, 1.0, 3.0)
        self.assertEqual(w.gpu.joules, 0.0)
        self.assertEqual(gates(validation_block(worker_config(), w, [])).get("zero_energy_with_power"), "fail")

    def test_short_window_flag(self) -> None:
        clock, _, meter = make([FakeDevice(uuid(0), Steady(300.0))])
        w = window(clock, meter, 1.0, 3.0)
        v = validation_block(worker_config(min_window_s=30), w, [])
        self.assertFalse(v["passed"])
        self.assertEqual(gates(v).get("window_too_short"), "fail")


class BaselineTest(unittest.TestCase):
    def test_idle_baseline_and_adjusted_energy(self) -> None:
        dev = FakeDevice(uuid(0), Steps([(0.0, 70.0), (2.5, 300.0)]))
        clock, _, meter = make([dev])  # probe leaves the clock at 0.5 s
        self.assertAlmostEqual(clock.now(), 0.5, places=6)
        base = meter.idle_baseline(1.5, threading.Event())
        assert base is not None
        self.assertAlmostEqual(base.duration_s, 1.5, places=6)
        self.assertAlmostEqual(base.gpu_power_w or 0, 70.0, places=6)
        w = window(clock, meter, 2.5, 7.5)
        self.assertAlmostEqual(w.gpu.joules or 0, 1500.0, places=6)
        ms = MetricSet()
        block = energy_block(w, base, ms, [])
        self.assertAlmostEqual(ms.get("energy_gpu_raw_j") or 0, 1500.0, places=6)
        self.assertAlmostEqual(ms.get("energy_gpu_adjusted_j") or 0, 1500.0 - 70.0 * 5.0, places=6)
        self.assertAlmostEqual(block["adjusted"]["gpu_j"], 1150.0, places=6)
        self.assertIsNone(ms.get("energy_cpu_adjusted_j"))
        self.assertIn("energy_cpu_adjusted_j", ms.unmeasured)
        tl = meter.timeline()
        assert tl is not None
        self.assertEqual([p["name"] for p in tl["phases"]], ["idle_baseline", "steady"])


class SelectionTest(unittest.TestCase):
    def devices(self) -> list[FakeDevice]:
        return [FakeDevice(uuid(i), Steady(100.0 * (i + 1)), mig_children=[f"MIG-child-{i}"] if i == 1 else [])
                for i in range(3)]

    def test_visible_uuids_and_gpu_ids(self) -> None:
        clock, _, meter = make(self.devices(), visible=f"{uuid(2)},{uuid(0)}",
                               cfg=MeasurementCfg(idle_baseline_s=0, min_window_s=0, gpu_ids=[0]))
        assert meter.session is not None
        self.assertEqual([g.uuid for g in meter.session.gpus], [uuid(2)])
        w = window(clock, meter, 1.0, 2.0)
        self.assertAlmostEqual(w.gpu.joules or 0, 300.0, places=6)

    def test_visible_indices_all_used(self) -> None:
        clock, _, meter = make(self.devices(), visible="1,2")
        assert meter.session is not None
        self.assertEqual([g.nvml_index for g in meter.session.gpus], [1, 2])
        w = window(clock, meter, 1.0, 2.0)
        self.assertAlmostEqual(w.gpu.joules or 0, 500.0, places=6)
        self.assertEqual(len(w.per_gpu), 2)

    def test_mig_measures_parent_with_note(self) -> None:
        _, _, meter = make(self.devices(), visible="MIG-child-1")
        assert meter.session is not None
        self.assertEqual([g.uuid for g in meter.session.gpus], [uuid(1)])
        self.assertTrue(any("MIG" in n for n in meter.session.gpus[0].notes))
        env = meter.environment()["nvml"]
        self.assertEqual(env["gpus"][0]["mig_instances"], ["MIG-child-1"])
        self.assertEqual(env["driver_version"], "550.90.07")
        self.assertEqual(env["cuda_driver_version"], "12.4")
        self.assertEqual(env["gpus"][0]["power_limit_w"], 700.0)

    def test_gpu_id_out_of_range_gives_reason(self) -> None:
        clock = VirtualClock()
        m = meter_with(MeasurementCfg(gpu_ids=[5]), nvml_module=FakeNvml(self.devices(), clock), clock=clock,
                  rapl_root="/nonexistent", use_env=False)
        self.assertFalse(m.has_gpu)
        self.assertIn("gpu_ids", m.gpu_reason or "")

    def test_torch_uuid_mismatch_falls_back_to_visible_devices(self) -> None:
        clock = VirtualClock()
        session = NvmlSession(FakeNvml(self.devices(), clock), visible="1", torch_uuids=["GPU-not-known"], use_env=False)
        self.assertIsNone(session.reason)
        self.assertEqual([g.nvml_index for g in session.gpus], [1])
        self.assertTrue(any("fell back" in n for n in session.notes))

    def test_torch_uuids_select_by_uuid(self) -> None:
        clock = VirtualClock()
        session = NvmlSession(FakeNvml(self.devices(), clock), torch_uuids=[uuid(2)], use_env=False)
        self.assertEqual([g.uuid for g in session.gpus], [uuid(2)])

    def test_parse_visible(self) -> None:
        self.assertIsNone(parse_visible_devices(None))
        self.assertEqual(parse_visible_devices("0,2,-1,3"), ["0", "2"])
        self.assertEqual(parse_visible_devices(""), [])

    def test_nvml_init_failure_reason(self) -> None:
        clock = VirtualClock()
        m = meter_with(CFG, nvml_module=FakeNvml([], clock, init_error="Driver Not Loaded"), clock=clock,
                  rapl_root="/nonexistent", use_env=False)
        self.assertIn("Driver Not Loaded", m.gpu_reason or "")
        w = m.end(m.begin("x"))
        self.assertIsNone(w.gpu.joules)


class CalibrationWithFakeGpuTest(unittest.TestCase):
    def test_calibration_energy_matches_trace(self) -> None:
        from lem_worker.backends.calibration import run_calibration
        from tests.contract import common_errors

        cfg = parse_config({
            "run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1},
            "experiment": {"backend": "calibration", "measurement": {"idle_baseline_s": 0.2, "min_window_s": 0.5},
                           "calibration": {"matrix_size": 16, "duration_s": 0.5}},
        })
        clock = RealTimeClock()
        nv = FakeNvml([FakeDevice(uuid(0), Steady(200.0))], clock)
        doc = run_calibration(cfg, threading.Event(), nvml_module=nv, clock=clock, probe_s=0.2,
                              rapl_root="/nonexistent", use_env=False)
        self.assertEqual(common_errors(doc, 3), [])
        m = doc["metrics"]
        # the counter is quantised to its 100 ms updates: at most one update of error at each edge
        self.assertAlmostEqual(m["energy_gpu_raw_j"], 200.0 * m["window_s"], delta=200.0 * 0.2 + 1e-9)
        self.assertAlmostEqual(m["j_per_gflop"], m["energy_total_j"] / (m["flops"] / 1e9))
        self.assertAlmostEqual(m["baseline_power_gpu_w"], 200.0, delta=200.0 * 0.2 / 0.2)
        self.assertEqual(doc["environment"]["nvml"]["gpus"][0]["uuid"], uuid(0))
        self.assertTrue(doc["validation"]["passed"], doc["validation"])


class UpdatePeriodTest(unittest.TestCase):
    def test_interval_never_faster_than_update_period(self) -> None:
        _, _, meter = make([FakeDevice(uuid(0), Steady(100.0), update_period_us=200_000)], probe_s=1.0)
        self.assertAlmostEqual(meter.update_period_s or 0, 0.2, delta=0.0045)
        self.assertAlmostEqual(meter.interval_s, meter.update_period_s or 0, places=9)
        _, _, meter2 = make([FakeDevice(uuid(0), Steady(100.0), update_period_us=50_000)], probe_s=1.0)
        self.assertAlmostEqual(meter2.update_period_s or 0, 0.05, delta=0.0045)  # probe polls every 4 ms
        self.assertAlmostEqual(meter2.interval_s, 0.1, places=6)


class ThreadedSamplerTest(unittest.TestCase):
    def test_sampler_sleeps_and_stops(self) -> None:
        clock = RealTimeClock()
        nv = FakeNvml([FakeDevice(uuid(0), Steady(300.0))], clock)
        session = NvmlSession(nv, use_env=False)
        sampler = PowerSampler(session, clock, 0.02)
        cpu0 = time.process_time()
        sampler.start()
        time.sleep(0.5)
        sampler.stop()
        cpu = time.process_time() - cpu0
        n = len(sampler.snapshot()[uuid(0)])
        self.assertGreaterEqual(n, 10)
        self.assertLessEqual(n, 40)
        self.assertLess(cpu, 0.25, "the sampler must sleep between polls, not busy-wait")
        self.assertIsNone(sampler._thread)


if __name__ == "__main__":
    unittest.main()
