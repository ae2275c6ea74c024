"""The device lock: two processes contend for one device; the second waits and records it, or gives up."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

from typing import Any

from lem_worker import devicelock
from lem_worker.devicelock import LOCK_TIMEOUT_EXIT, DeviceLock, DeviceLockTimeout, device_keys
from tests.test_cli_calibration import WORKER_ROOT, calibration_config, run_cli

# A second process that takes the lock of `cpu`, says so on stdout, and holds it for argv[2] seconds.
HOLDER = """
import sys, time
from lem_worker.devicelock import DeviceLock
lock = DeviceLock([sys.argv[3]], 5.0, {"campaign_id": "other", "run_id": "other:7", "attempt": 2, "pid": %d, "host": "h"},
                  directory=sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


class DeviceLockTest(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = os.path.join(tmp.name, "locks")

    def hold(self, seconds: float, key: str = "cpu") -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=WORKER_ROOT)
        p = subprocess.Popen([sys.executable, "-c", HOLDER % os.getpid(), self.dir, str(seconds), key],
                             stdout=subprocess.PIPE, text=True, env=env)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        assert p.stdout is not None
        self.assertEqual(p.stdout.readline().strip(), "held")
        return p

    def test_keys_are_gpu_uuids_sorted_or_the_host(self) -> None:
        self.assertEqual(device_keys(["GPU-b", "GPU-a", "GPU-b"]), ["GPU-a", "GPU-b"])
        self.assertEqual(device_keys([]), ["cpu"])

    def test_uncontended_lock_records_no_wait_and_is_shareable(self) -> None:
        with DeviceLock(["cpu"], 1.0, {"run_id": "r:1"}, directory=self.dir) as lock:
            self.assertEqual(lock.record["devices"], ["cpu"])
            self.assertEqual(lock.record["waited_s"], 0.0)
            self.assertIsNone(lock.record["waited_for"])
            with open(os.path.join(self.dir, "cpu.lock"), encoding="utf-8") as fh:
                self.assertEqual(json.load(fh)["run_id"], "r:1", "the holder writes who it is")
        self.assertEqual(os.stat(self.dir).st_mode & 0o7777, 0o1777)
        self.assertEqual(os.stat(os.path.join(self.dir, "cpu.lock")).st_mode & 0o777, 0o666)

    def test_second_process_waits_and_records_the_holder(self) -> None:
        holder = self.hold(120.0)
        real_read = devicelock.read_holder

        def read_then_release(fd: int) -> Any:  # called only while waiting: then the holder goes away
            info = real_read(fd)
            holder.kill()
            holder.wait()
            return info

        lock = DeviceLock(["cpu"], 30.0, {"run_id": "mine:1"}, directory=self.dir, poll_s=0.02)
        with mock.patch.object(devicelock, "read_holder", side_effect=read_then_release):
            record = lock.acquire()
        try:
            self.assertGreater(record["waited_s"], 0.0)
            self.assertEqual(record["waited_for"]["run_id"], "other:7")
            self.assertEqual(record["waited_for"]["campaign_id"], "other")
        finally:
            lock.release()

    def test_lock_of_a_killed_holder_is_free_at_once(self) -> None:
        holder = self.hold(60.0)
        holder.kill()
        holder.wait()
        with DeviceLock(["cpu"], 5.0, {"run_id": "mine:1"}, directory=self.dir) as lock:
            self.assertEqual(lock.record["waited_s"], 0.0)

    def test_timeout_gives_up_with_a_clear_reason(self) -> None:
        self.hold(30.0)
        lock = DeviceLock(["cpu"], 0.3, {"run_id": "mine:1"}, directory=self.dir, poll_s=0.02)
        with self.assertRaises(DeviceLockTimeout) as ctx:
            lock.acquire()
        self.assertEqual(ctx.exception.exit_code, LOCK_TIMEOUT_EXIT)
        self.assertIn("other:7", str(ctx.exception))
        self.assertIn("device_lock_timeout_s", str(ctx.exception))
        self.assertEqual(lock.fds, [], "nothing stays locked after giving up")

    def test_worker_waits_for_the_device_and_records_it_in_the_result(self) -> None:
        holder = self.hold(120.0)
        cfg = os.path.join(self.dir, "..", "CONFIG.json")
        with open(cfg, "w", encoding="utf-8") as fh:
            json.dump(calibration_config(duration_s=0.1), fh)
        out = os.path.join(self.dir, "..", "out")
        t0 = time.time()
        env = dict(os.environ, PYTHONPATH=WORKER_ROOT, LEM_LOCK_DIR=self.dir)
        proc = subprocess.Popen([sys.executable, "-m", "lem_worker", "run", cfg, "--out", out, "--attempt-token", "lem-test-p1-a1"],
                                stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the worker says it waits, and for whom; then the holder goes away
            seen.append(line)
            if "is being measured by run other:7" in line:
                holder.kill()
                break
        rest = proc.stderr.read()
        self.assertEqual(proc.wait(60), 0, "".join(seen) + rest)
        with open(os.path.join(out, "result.json"), encoding="utf-8") as fh:
            doc = json.load(fh)
        dl = doc["device_lock"]
        self.assertEqual(dl["devices"], ["cpu"])
        self.assertGreater(dl["waited_s"], 0.0)
        self.assertEqual(dl["waited_for"]["run_id"], "other:7")
        started, ended = doc["window"]["started_at"], doc["window"]["ended_at"]
        self.assertLessEqual(started, ended)
        self.assertGreaterEqual(started, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 - 1)))

    def test_a_gpu_run_locks_its_gpus_by_uuid_and_waits_for_a_busy_one(self) -> None:
        import threading

        from lem_worker.config import parse_config
        from lem_worker.backends.calibration import run_calibration
        from tests.fixtures.fake_nvml import FakeDevice, FakeNvml, RealTimeClock, Steady, uuid

        cfg = parse_config({
            "run": {"run_id": "c:3", "experiment_id": "e", "cycle": 1, "attempt": 1},
            "experiment": {"backend": "calibration", "measurement": {"idle_baseline_s": 0, "min_window_s": 0},
                           "calibration": {"matrix_size": 16, "duration_s": 0.1}},
        })
        clock = RealTimeClock()
        nv = FakeNvml([FakeDevice(uuid(1), Steady(100.0)), FakeDevice(uuid(0), Steady(100.0))], clock)
        holder = self.hold(120.0, key=uuid(1))
        real_read = devicelock.read_holder

        def read_then_release(fd: int) -> Any:  # called only while waiting: then the holder goes away
            info = real_read(fd)
            holder.kill()
            holder.wait()
            return info

        with mock.patch.dict(os.environ, {"LEM_LOCK_DIR": self.dir}), \
                mock.patch.object(devicelock, "read_holder", side_effect=read_then_release):
            doc = run_calibration(cfg, threading.Event(), nvml_module=nv, clock=clock, probe_s=0.2,
                                  rapl_root="/nonexistent", use_env=False)
        dl = doc["device_lock"]
        self.assertEqual(dl["devices"], sorted([uuid(0), uuid(1)]))
        self.assertNotIn("cpu", dl["devices"])
        self.assertGreater(dl["waited_s"], 0.0)
        self.assertEqual(dl["waited_for"]["run_id"], "other:7")

    def test_worker_exits_75_when_the_device_stays_locked(self) -> None:
        self.hold(30.0)
        doc = calibration_config(duration_s=0.1)
        doc["experiment"]["measurement"]["device_lock_timeout_s"] = 0.3
        cfg = os.path.join(self.dir, "..", "CONFIG.json")
        with open(cfg, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        out = os.path.join(self.dir, "..", "out")
        with mock.patch.dict(os.environ, {"LEM_LOCK_DIR": self.dir}):
            proc = run_cli(["run", cfg, "--out", out])
        self.assertEqual(proc.returncode, LOCK_TIMEOUT_EXIT, proc.stderr)
        self.assertIn("stayed locked by another measurement", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "result.json")))


if __name__ == "__main__":
    unittest.main()
