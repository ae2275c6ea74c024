"""`run - --result-stdout` (the Slurm runtime's srun steps): config on stdin, framed files on stdout."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import unittest

from unittest import mock

from lem_worker.framing import visible_gpus
from tests.fixtures.fake_nvml import FakeDevice, FakeNvml, Steady, VirtualClock, uuid
from tests.test_cli_calibration import WORKER_ROOT, calibration_config

HEADER = re.compile(rb"@@lem-frame/1 (\S+) (\d+) ([0-9a-f]{64})\n")


def frames(out: bytes) -> dict[str, bytes]:
    """The frames of a step's stdout; fails on any byte outside a frame."""
    files: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        m = HEADER.match(out, pos)
        assert m is not None, f"stray stdout at {pos}: {out[pos:pos + 80]!r}"
        name, size = m.group(1).decode(), int(m.group(2))
        body = out[m.end():m.end() + size]
        assert hashlib.sha256(body).hexdigest() == m.group(3).decode()
        end = f"\n@@lem-frame-end {name}\n".encode()
        assert out[m.end() + size:m.end() + size + len(end)] == end
        files[name] = body
        pos = m.end() + size + len(end)
    return files


def run_framed(config: dict[str, object]) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=WORKER_ROOT)
    return subprocess.run([sys.executable, "-m", "lem_worker", "run", "-", "--result-stdout", "--attempt-token", "lem-t-p0-a1"],
                          input=json.dumps(config).encode(), capture_output=True, env=env, timeout=60)


class FramingTest(unittest.TestCase):
    def test_result_and_placement_framed_log_on_stderr(self) -> None:
        p = run_framed(calibration_config())
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        files = frames(p.stdout)
        self.assertEqual(sorted(files), ["placement.json", "result.json"])
        self.assertEqual(json.loads(files["result.json"])["run_id"], "run-1")
        placement = json.loads(files["placement.json"])
        self.assertEqual(placement["schema"], "lem.placement/1")
        self.assertTrue(placement["gpus"] is not None or placement["reason"])  # UUIDs, or why not
        self.assertIn(b"calibration: ", p.stderr)  # the run's log went to stderr

    def test_failure_keeps_its_exit_code_and_still_frames_placement(self) -> None:
        p = run_framed(calibration_config(matrix_size=4))  # below the worker's 8: a config error
        self.assertEqual(p.returncode, 2, p.stderr.decode())
        files = frames(p.stdout)
        self.assertNotIn("result.json", files)
        self.assertIn("placement.json", files)
        self.assertIn(b"matrix_size", p.stderr)

    def test_placement_names_the_steps_gpus_by_uuid_with_a_fake_nvml(self) -> None:
        # Slurm gave this step GPUs 1 and 2 of four (CUDA_VISIBLE_DEVICES=1,2 without ConstrainDevices).
        nv = FakeNvml([FakeDevice(uuid(i), Steady(100.0)) for i in range(4)], VirtualClock())
        with mock.patch.dict(os.environ, {"CUDA_VISIBLE_DEVICES": "1,2", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}):
            got = visible_gpus(nv)
        self.assertEqual([g["uuid"] for g in got["gpus"]], [uuid(1), uuid(2)])
        self.assertEqual([g["nvml_index"] for g in got["gpus"]], [1, 2])
        self.assertIsNone(got["reason"])


if __name__ == "__main__":
    unittest.main()
