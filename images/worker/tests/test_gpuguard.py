"""The worker's GPU guard with the fake NVML: a window that shared its GPU with a process the worker
does not own is flagged `shared_gpu`; the worker's own processes and a quiet GPU are not; a pid this
namespace cannot see counts as the worker's own CUDA context only up to one per GPU."""
from __future__ import annotations

import os
import unittest
from types import SimpleNamespace

from lem_worker.gpuguard import FLAG, GpuGuard, guard_for, own_pids
from lem_worker.metering import assigned_gpus
from tests.fixtures.fake_nvml import FakeDevice, FakeNvml, Steady, VirtualClock


def fake(processes_a: dict[int, int], processes_b: dict[int, int] | None = None) -> tuple[FakeNvml, VirtualClock]:
    clock = VirtualClock()
    devs = [FakeDevice("GPU-a", Steady(100.0), processes=lambda t: processes_a if t < 5 else {}),
            FakeDevice("GPU-b", Steady(100.0), processes=lambda t: processes_b or {})]
    nv = FakeNvml(devs, clock)
    nv.nvmlInit()
    return nv, clock


class GpuGuardFakeNvmlTest(unittest.TestCase):
    def test_flags_a_foreign_process_seen_at_window_start(self) -> None:
        nv, clock = fake({os.getpid(): 1 << 30, 4242: 2 << 30})
        g = GpuGuard(nv, [("GPU-a", 0), ("GPU-b", 1)], own=lambda: {os.getpid()}, visible=lambda pid: True, own_unseen=0)
        g.check("window_start")
        clock.sleep(10)  # the other process has gone by the end: still flagged (it shared the window)
        g.check("window_end")
        self.assertEqual([f.gate for f in g.flags()], [FLAG])
        self.assertEqual(g.flags()[0].severity, "fail")
        self.assertEqual(g.record["foreign"], [{"stage": "window_start", "gpu": "GPU-a", "pid": 4242, "used_memory_bytes": 2 << 30}])
        self.assertEqual(g.record["checked"], ["window_start", "window_end"])

    def test_own_processes_and_quiet_gpus_pass(self) -> None:
        child = os.getpid() + 1
        nv, _ = fake({os.getpid(): 1 << 30, child: 1 << 20})
        g = GpuGuard(nv, [("GPU-a", 0), ("GPU-b", 1)], own=lambda: {os.getpid(), child}, visible=lambda pid: True, own_unseen=0)
        g.check("window_start")
        g.check("window_end")
        self.assertEqual(g.flags(), [])
        self.assertIsNone(g.record["reason"])

    def test_unseen_pids_beyond_the_workers_own_context_are_flagged(self) -> None:
        nv, _ = fake({91001: 1 << 30}, {91002: 1 << 30, 91003: 1 << 30})
        g = GpuGuard(nv, [("GPU-a", 0), ("GPU-b", 1)], own=lambda: set(), visible=lambda pid: False, own_unseen=1)
        g.check("window_start")
        self.assertEqual([(f["gpu"], f["pid"]) for f in g.record["foreign"]], [("GPU-b", 91003)])

    def test_guard_for_a_meter_without_gpus_is_none_and_own_pids_has_this_process(self) -> None:
        self.assertIsNone(guard_for(SimpleNamespace(session=None, has_gpu=False)))
        nv, _ = fake({})
        meter = SimpleNamespace(has_gpu=True, session=SimpleNamespace(nv=nv, gpus=[SimpleNamespace(uuid="GPU-a", handle=0)]))
        g = guard_for(meter)
        assert g is not None
        g.check("window_start")
        self.assertEqual(g.record["checked"], ["window_start"])
        self.assertIn(os.getpid(), own_pids())

    def test_assigned_gpus_come_from_lem_gpu_uuids(self) -> None:
        old = os.environ.get("LEM_GPU_UUIDS")
        try:
            os.environ["LEM_GPU_UUIDS"] = "GPU-x, GPU-y,"
            self.assertEqual(assigned_gpus(), ["GPU-x", "GPU-y"])
            del os.environ["LEM_GPU_UUIDS"]
            self.assertEqual(assigned_gpus(), [])
        finally:
            if old is not None:
                os.environ["LEM_GPU_UUIDS"] = old


if __name__ == "__main__":
    unittest.main()
