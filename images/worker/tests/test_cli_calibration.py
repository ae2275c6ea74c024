"""End-to-end: run the CLI on a short calibration config and check the result against the contract."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest
from typing import Any

from tests.contract import common_errors

WORKER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = WORKER_ROOT
    return subprocess.run([sys.executable, "-m", "lem_worker", *args], capture_output=True, text=True, env=env, timeout=timeout)


def calibration_config(**calibration: Any) -> dict[str, Any]:
    cal = {"matrix_size": 32, "duration_s": 0.3, "dtype": "float64", "device": "cpu"}
    cal.update(calibration)
    return {
        "run": {"run_id": "run-1", "experiment_id": "exp-1", "cycle": 2, "attempt": 1},
        "experiment": {
            "backend": "calibration",
            "measurement": {"idle_baseline_s": 0, "min_window_s": 0, "sample_interval_ms": 100, "cross_check_threshold": 0.05},
            "extra": {},
            "calibration": cal,
        },
    }


class CalibrationCliTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def write_config(self, doc: Any) -> str:
        path = os.path.join(self.tmp.name, "CONFIG.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        return path

    def test_calibration_run_writes_contract_result(self) -> None:
        out = os.path.join(self.tmp.name, "out")
        proc = run_cli(["run", self.write_config(calibration_config()), "--out", out])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["result.json"], "exactly one file, no temp files left")
        with open(os.path.join(out, "result.json"), encoding="utf-8") as fh:
            doc = json.load(fh)
        version = doc["schema_version"]
        self.assertEqual(common_errors(doc, version), [])
        self.assertEqual((doc["run_id"], doc["experiment_id"], doc["cycle"], doc["attempt"], doc["backend"]),
                         ("run-1", "exp-1", 2, 1, "calibration"))
        m = doc["metrics"]
        for name in ("duration_s", "iterations", "flops", "flops_per_s", "energy_gpu_j", "energy_cpu_j",
                     "energy_dram_j", "energy_total_j", "power_mean_w", "j_per_gflop"):
            self.assertIn(name, m)
        self.assertGreaterEqual(m["duration_s"], 0.3)
        self.assertLess(m["duration_s"], 5.0)
        self.assertGreater(m["iterations"], 0)
        self.assertAlmostEqual(m["flops_per_s"], m["flops"] / m["duration_s"], delta=m["flops_per_s"] * 1e-9)
        for dom in ("gpu", "cpu", "dram"):
            self.assertEqual(m[f"energy_{dom}_j"], doc["energy"][dom]["joules"])
        if m["energy_total_j"] is None:
            self.assertIn("energy_total_j", doc["unmeasured"])
        env = doc["environment"]
        for key in ("hostname", "platform", "python_version", "cpu_model", "numpy_version", "in_container"):
            self.assertIn(key, env)
        self.assertIn("calibration", proc.stderr)

    def test_bad_config_exits_2_without_result(self) -> None:
        doc = calibration_config(matrix_size=3)
        out = os.path.join(self.tmp.name, "out")
        proc = run_cli(["run", self.write_config(doc), "--out", out])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("matrix_size", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "result.json")))

    def test_missing_config_file_exits_2(self) -> None:
        proc = run_cli(["run", os.path.join(self.tmp.name, "nope.json"), "--out", self.tmp.name])
        self.assertEqual(proc.returncode, 2)

    def test_cuda_without_torch_cuda_is_runtime_failure(self) -> None:
        out = os.path.join(self.tmp.name, "out")
        proc = run_cli(["run", self.write_config(calibration_config(device="cuda")), "--out", out])
        # torch without CUDA: engine_error (1); no torch at all: missing_dependency (3), found before the burn.
        self.assertEqual(proc.returncode, 1 if importlib.util.find_spec("torch") else 3, proc.stderr)
        self.assertIn("cuda", proc.stderr.lower())
        self.assertFalse(os.path.exists(os.path.join(out, "result.json")))

    def test_sigterm_stops_promptly_without_result(self) -> None:
        import signal
        import time

        out = os.path.join(self.tmp.name, "out")
        env = dict(os.environ)
        env["PYTHONPATH"] = WORKER_ROOT
        proc = subprocess.Popen([sys.executable, "-m", "lem_worker", "run",
                                 self.write_config(calibration_config(duration_s=60)), "--out", out],
                                stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        for line in proc.stderr:
            if "calibration:" in line or time.monotonic() > deadline:
                break
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        rest = proc.stderr.read()
        proc.stderr.close()
        self.assertEqual(rc, 143, rest)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertIn("terminated", rest)
        self.assertFalse(os.path.exists(os.path.join(out, "result.json")))
        self.assertEqual(os.listdir(out), ["failure.json"])  # no result, only the failure record
        with open(os.path.join(out, "failure.json"), encoding="utf-8") as fh:
            self.assertEqual(json.load(fh)["kind"], "terminated")

    def test_timeout_is_runtime_failure_without_result(self) -> None:
        doc = calibration_config(duration_s=30)
        doc["experiment"]["measurement"]["timeout_s"] = 0.5
        out = os.path.join(self.tmp.name, "out")
        proc = run_cli(["run", self.write_config(doc), "--out", out], timeout=20)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("timeout_s", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "result.json")))

    def test_health_prints_one_json_line(self) -> None:
        proc = run_cli(["health"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1)
        info = json.loads(lines[0])
        for key in ("python_version", "numpy", "torch", "nvml"):
            self.assertIn(key, info)


if __name__ == "__main__":
    unittest.main()
