"""The thermal probe and calibrate helpers: the designed fake cooling curve, and a CPU host without sensors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest
from typing import Any

from lem_worker import thermal

WORKER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    e = dict(os.environ)
    e.update(env)
    e["PYTHONPATH"] = WORKER_ROOT
    if "LEM_FAKE_THERMAL" not in env:
        e.pop("LEM_FAKE_THERMAL", None)
    out = subprocess.run([sys.executable, "-m", "lem_worker", *args], capture_output=True, text=True, env=e, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


class FakeCoolingCurveTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, "fake.json")
        with open(self.path, "w") as f:
            json.dump({"idle_c": 30, "hot_c": 70, "tau_s": 10, "idle_w": 50, "hot_w": 250, "gpus": 2}, f)

    def test_idle_until_heated_then_decays_towards_idle(self) -> None:
        r = thermal.fake_reading(self.path, now=1000.0)
        self.assertEqual([g["temp_c"] for g in r["gpus"]], [30.0, 30.0])
        os.environ["LEM_FAKE_THERMAL"] = self.path
        try:
            thermal.fake_heat(now=1000.0)
        finally:
            del os.environ["LEM_FAKE_THERMAL"]
        at0 = thermal.fake_reading(self.path, now=1000.0)["gpus"][0]
        at10 = thermal.fake_reading(self.path, now=1010.0)["gpus"][0]
        at60 = thermal.fake_reading(self.path, now=1060.0)["gpus"][0]
        self.assertAlmostEqual(at0["temp_c"], 70.0)
        self.assertAlmostEqual(at10["temp_c"], 30 + 40 / 2.718281828, places=2)
        self.assertLess(at60["temp_c"], 30.2)
        # Power settles faster than temperature (tau / 4).
        self.assertLess(at10["power_w"] - 50, (at10["temp_c"] - 30) * 5)

    def test_thermal_cli_reads_the_fake(self) -> None:
        r = cli(["thermal", "--json"], {"LEM_FAKE_THERMAL": self.path})
        self.assertIsNone(r["reason"])
        self.assertEqual(len(r["gpus"]), 2)


class NoSensorTest(unittest.TestCase):
    def test_thermal_without_nvml_says_why(self) -> None:
        try:
            import pynvml  # noqa: F401
            self.skipTest("pynvml is installed here")
        except ImportError:
            pass
        r = cli(["thermal", "--json"], {})
        self.assertEqual(r["gpus"], [])
        self.assertIn("NVML", r["reason"])

    def test_calibrate_on_cpu_measures_the_burn_and_gives_reasons_for_the_rest(self) -> None:
        try:
            import pynvml  # noqa: F401
            self.skipTest("pynvml is installed here")
        except ImportError:
            pass
        r = cli(["calibrate", "--json", "--burn-s", "0.3", "--idle-s", "0"], {})
        self.assertGreater(r["burn_s"], 0.29)
        for key in ("idle_temp_c", "idle_power_w", "energy_counter_update_s", "time_to_idle_s"):
            self.assertIsNone(r[key]["value"], key)
            self.assertTrue(r[key]["reason"], key)


class CalibrateWithFakeTest(unittest.TestCase):
    def test_time_to_idle_follows_the_designed_curve(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "fake.json")
            with open(path, "w") as f:
                json.dump({"idle_c": 35, "hot_c": 75, "tau_s": 0.8}, f)
            r = cli(["calibrate", "--json", "--burn-s", "0.3", "--idle-s", "0"], {"LEM_FAKE_THERMAL": path})
        self.assertEqual(r["idle_temp_c"], {"value": 35.0, "reason": None})
        self.assertGreater(r["burn_peak_temp_c"]["value"], 70)
        # 40 °C above idle decays to within 1 °C after tau * ln(40) ≈ 2.95 s (polled every 0.5 s).
        self.assertGreater(r["time_to_idle_s"]["value"], 2.0)
        self.assertLess(r["time_to_idle_s"]["value"], 6.0)
        self.assertIsNone(r["energy_counter_update_s"]["value"])
        self.assertIn("fake", r["energy_counter_update_s"]["reason"])


if __name__ == "__main__":
    unittest.main()
