"""The persistent worker (`python3 -m lem_worker serve`) with the fake engine (LEM_FAKE_ENGINE): loads
counted, reuse recorded, a crash and an out-of-memory failure end only their run, SIGTERM mid-run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from typing import IO, Any, Optional

from tests.test_cli_calibration import WORKER_ROOT, calibration_config


class Serve:
    def __init__(self, state_dir: str, fake: dict[str, Any], pythonpath: str = WORKER_ROOT) -> None:
        env = dict(os.environ, PYTHONPATH=pythonpath, LEM_FAKE_ENGINE=json.dumps(fake),
                   LEM_LOCK_DIR=os.path.join(state_dir, "locks"))
        self.proc = subprocess.Popen([sys.executable, "-m", "lem_worker", "serve", "--state-dir", state_dir],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.ready = self.read()

    def read(self) -> Optional[dict[str, Any]]:
        out: Optional[IO[str]] = self.proc.stdout
        assert out is not None
        line = out.readline()
        return json.loads(line) if line else None

    def answer(self) -> Optional[dict[str, Any]]:
        """The answer to a run request (after its `started` line), None at EOF."""
        first = self.read()
        if first is not None and first.get("op") == "started":
            return self.read()
        return first

    def send(self, body: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(body) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for fh in (self.proc.stdin, self.proc.stdout):
            if fh is not None:
                fh.close()


class ServeTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.loads = os.path.join(self.tmp.name, "loads")
        self.n = 0

    def serve(self, **fake: Any) -> Serve:
        s = Serve(os.path.join(self.tmp.name, f"state{self.n}"), {"load_s": 0.2, "loads_file": self.loads, **fake})
        self.n += 1
        self.addCleanup(s.close)
        self.assertEqual(s.ready and s.ready["op"], "ready")
        return s

    def request(self, s: Serve, exp: str, matrix_size: int = 32, duration_s: float = 0.05) -> tuple[dict[str, Any], str]:
        self.n += 1
        run_dir = os.path.join(self.tmp.name, f"run{self.n}")
        os.makedirs(run_dir)
        doc = calibration_config(matrix_size=matrix_size, duration_s=duration_s)
        doc["run"]["experiment_id"] = exp
        cfg = os.path.join(run_dir, "config.json")
        with open(cfg, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        s.send({"op": "run", "config": cfg, "out": run_dir, "log": os.path.join(run_dir, "worker.log"),
                "attempt_token": f"lem-t-p{self.n}-a1"})
        return s.answer() or {}, run_dir

    def load_count(self) -> int:
        with open(self.loads, encoding="utf-8") as fh:
            return len(fh.read().split())

    def test_fake_engine_loads_once_per_configuration_and_results_record_reuse(self) -> None:
        s = self.serve()
        answers = [self.request(s, "exp-a") for _ in range(3)]
        other, _ = self.request(s, "exp-b", matrix_size=16)
        self.assertEqual([a["exit_code"] for a, _ in answers] + [other["exit_code"]], [0, 0, 0, 0])
        self.assertEqual(self.load_count(), 2)  # one per engine configuration, not one per run
        engines = []
        for _, run_dir in answers:
            with open(os.path.join(run_dir, "result.json"), encoding="utf-8") as fh:
                engines.append(json.load(fh)["engine"])
        self.assertEqual([e["loaded_for_run"] for e in engines], [True, False, False])
        self.assertEqual([e["reuse_count"] for e in engines], [0, 1, 2])
        self.assertIsNotNone(engines[0]["load_s"])
        self.assertIsNone(engines[1]["load_s"])
        self.assertEqual({e["worker_pid"] for e in engines}, {s.proc.pid})
        self.assertEqual(engines[2]["worker"], "persistent")
        with open(os.path.join(answers[1][1], "worker.log"), encoding="utf-8") as fh:
            self.assertIn("experiment exp-a", fh.read())  # the run's output went to its own log

    def test_fake_oom_fails_only_that_run_typed_and_the_worker_recycles(self) -> None:
        s = self.serve(oom_on="exp-oom")
        ok, _ = self.request(s, "exp-a")
        oom, run_dir = self.request(s, "exp-oom")
        self.assertEqual((ok["exit_code"], oom["exit_code"], oom["kind"]), (0, 4, "out_of_memory"))
        self.assertTrue(oom["recycle"])
        self.assertFalse(os.path.exists(os.path.join(run_dir, "result.json")))
        with open(os.path.join(run_dir, "failure.json"), encoding="utf-8") as fh:
            self.assertEqual(json.load(fh)["kind"], "out_of_memory")
        self.assertEqual(s.proc.wait(timeout=10), 0)  # exits after answering: memory given back
        s2 = self.serve(oom_on="exp-oom")
        after, _ = self.request(s2, "exp-a")
        self.assertEqual(after["exit_code"], 0)
        self.assertTrue(after["engine"]["loaded_for_run"])

    def test_fake_crash_ends_the_worker_without_an_answer(self) -> None:
        s = self.serve(crash_on="exp-crash")
        answer, run_dir = self.request(s, "exp-crash")
        self.assertEqual(answer, {})  # the process died: EOF on the control channel
        self.assertEqual(s.proc.wait(timeout=10), -signal.SIGKILL)
        self.assertFalse(os.path.exists(os.path.join(run_dir, "result.json")))

    def test_sigterm_mid_run_answers_terminated_and_clears_the_current_run(self) -> None:
        s = self.serve()
        run_dir = os.path.join(self.tmp.name, "long")
        os.makedirs(run_dir)
        doc = calibration_config(duration_s=60)
        cfg = os.path.join(run_dir, "config.json")
        with open(cfg, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        s.send({"op": "run", "config": cfg, "out": run_dir, "log": os.path.join(run_dir, "worker.log"),
                "attempt_token": "lem-t-p9-a1"})
        current = os.path.join(self.tmp.name, "state0", "current.json")
        deadline = time.monotonic() + 20
        while not os.path.exists(current) and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(current, encoding="utf-8") as fh:
            self.assertEqual(json.load(fh)["attempt_token"], "lem-t-p9-a1")
        time.sleep(0.5)
        s.proc.send_signal(signal.SIGTERM)
        answer = s.answer() or {}
        self.assertEqual((answer.get("exit_code"), answer.get("kind")), (143, "terminated"))
        self.assertEqual(s.proc.wait(timeout=10), 143)
        self.assertFalse(os.path.exists(current))


class EngineCacheTest(unittest.TestCase):
    def test_one_engine_at_a_time_reused_by_key_and_first_request_after_a_load(self) -> None:
        from lem_worker.engines import EngineCache, RunContext, note_first_request

        cache = EngineCache()
        cache.begin_run(RunContext(worker="persistent"))
        loads: list[str] = []

        def load(name: str) -> Any:
            loads.append(name)
            return object()

        a1, r1 = cache.acquire({"model": "a"}, lambda: load("a"))
        a2, r2 = cache.acquire({"model": "a"}, lambda: load("a"))
        _, r3 = cache.acquire({"model": "b"}, lambda: load("b"))  # evicts a
        _, r4 = cache.acquire({"model": "a"}, lambda: load("a"))
        self.assertIs(a1, a2)
        self.assertEqual(loads, ["a", "b", "a"])
        self.assertEqual([r["reuse_count"] for r in (r1, r2, r3, r4)], [0, 1, 0, 0])
        self.assertEqual(list(cache.entries), ['{"model": "a"}'])
        note_first_request(r1, {"durations_s": [0.5, 0.1]})
        note_first_request(r2, {"durations_s": [0.1]})
        self.assertEqual((r1["first_request_s"], r2["first_request_s"]), (0.5, None))


if __name__ == "__main__":
    unittest.main()
