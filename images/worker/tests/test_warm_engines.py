"""Warm engines for vLLM and TensorRT-LLM, against FAKE engines (tests/fixtures/fake_vllm.py,
fake_tensorrt_llm.py): a persistent worker reuses a loaded `LLM` for runs with the same engine key, releases
it (vLLM: engine-core shutdown; TensorRT-LLM: LLM.shutdown()) when the key changes, on an out-of-memory
failure, and a per-run worker releases it at the end of its run."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import unittest
from typing import Any, Callable
from unittest import mock

from lem_worker.engines import CACHE, RunContext
from tests.test_serve import Serve
from tests.test_tensorrt_backend import fake_modules
from tests.test_vllm_backend import WORKER_ROOT, config, exp_doc, fake_gpu_kwargs, fresh_fake, write_shim

QUICK = {"idle_baseline_s": 0, "min_window_s": 0.05, "sample_interval_ms": 50, "prefill_split": False}


class WarmEngineInProcessTest(unittest.TestCase):
    def setUp(self) -> None:
        CACHE.clear()
        CACHE.begin_run(RunContext(worker="persistent"))
        self.addCleanup(lambda: (CACHE.clear(), CACHE.begin_run(RunContext())))

    def runs(self, run: Callable[..., dict[str, Any]], modules: dict[str, Any], backend: str,
             sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
        docs = []
        with mock.patch.dict(sys.modules, modules):
            for over in sections:
                CACHE.begin_run(RunContext(worker="persistent"))
                docs.append(run(config(backend, measurement=QUICK, warmup={"mode": "fixed", "iterations": 1}, **over),
                                threading.Event(), **fake_gpu_kwargs()))
        return [d["engine"] for d in docs]

    def test_fake_vllm_llm_reused_for_the_same_key_and_released_when_it_changes(self) -> None:
        from lem_worker.backends.vllm import run_vllm

        fake = fresh_fake("fake_vllm")
        same = {"vllm": {"max_num_seqs": 8}}
        engines = self.runs(run_vllm, {"vllm": fake, "transformers": None}, "vllm",
                            [same, {**same, "batching": {"strategy": "static", "batch_size": 2}},
                             {"vllm": {"max_num_seqs": 16}}])
        self.assertEqual([e["loaded_for_run"] for e in engines], [True, False, True])
        self.assertEqual([e["reuse_count"] for e in engines], [0, 1, 0])  # batch size is not an engine argument
        self.assertEqual(len(fake.INSTANCES), 2)
        self.assertEqual(fake.RELEASED, [fake.INSTANCES[0]])  # the old engine's core shut down before the new load
        self.assertEqual(engines[1]["load_s_reason"][:13], "engine reused")
        self.assertIsNotNone(engines[0]["first_request_s"])  # the warm-up iteration after the load
        CACHE.clear()  # what the serve worker does on an out-of-memory failure
        self.assertEqual(fake.RELEASED, fake.INSTANCES)

    def test_a_server_mode_run_releases_the_cached_fake_vllm_engine_first(self) -> None:
        from lem_worker.backends.vllm import run_vllm

        fake = fresh_fake("fake_vllm")
        self.runs(run_vllm, {"vllm": fake, "transformers": None}, "vllm", [{}])
        self.assertEqual(fake.RELEASED, [])
        served = config("vllm", measurement=QUICK, vllm={"mode": "server", "endpoint": "http://127.0.0.1:9/v1"})
        with mock.patch.dict(sys.modules, {"vllm": fake}), \
                mock.patch("lem_worker.serving.run.run_serving", return_value={"engine": None}) as serving:
            run_vllm(served, threading.Event())
        serving.assert_called_once()
        self.assertEqual(fake.RELEASED, fake.INSTANCES)  # the server gets the GPU memory

    def test_fake_tensorrt_llm_reused_for_the_same_key_and_shut_down_when_it_changes(self) -> None:
        from lem_worker.backends.tensorrt import run_tensorrt

        fake = fresh_fake("fake_tensorrt_llm")
        engines = self.runs(run_tensorrt, fake_modules(fake), "tensorrt",
                            [{}, {"decoder": {"preset": "deterministic", "temperature": 0.0}}, {"max_output_tokens": 8}])
        self.assertEqual([e["loaded_for_run"] for e in engines], [True, False, True])  # max_seq_len follows the limits
        self.assertEqual([i.shut_down for i in fake.INSTANCES], [1, 0])
        CACHE.clear()
        self.assertEqual([i.shut_down for i in fake.INSTANCES], [1, 1])

    def test_a_per_run_worker_releases_its_fake_engines_after_the_run(self) -> None:
        from lem_worker.backends.tensorrt import run_tensorrt
        from lem_worker.backends.vllm import run_vllm

        CACHE.begin_run(RunContext())  # `python3 -m lem_worker run`
        fv, ft = fresh_fake("fake_vllm"), fresh_fake("fake_tensorrt_llm")
        with mock.patch.dict(sys.modules, {"vllm": fv, "transformers": None}):
            doc = run_vllm(config("vllm", measurement=QUICK), threading.Event(), **fake_gpu_kwargs())
        with mock.patch.dict(sys.modules, fake_modules(ft)):
            run_tensorrt(config("tensorrt", measurement=QUICK), threading.Event(), **fake_gpu_kwargs())
        self.assertEqual((doc["engine"]["worker"], doc["engine"]["loaded_for_run"]), ("per_run", True))
        self.assertEqual((fv.RELEASED, [i.shut_down for i in ft.INSTANCES]), (fv.INSTANCES, [1]))
        self.assertEqual(CACHE.entries, {})


class WarmVllmServeTest(unittest.TestCase):
    def test_fake_vllm_in_the_persistent_worker_reused_then_released_on_out_of_memory(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            shim = os.path.join(d, "shim")
            write_shim(shim, "vllm", "from tests.fixtures.fake_vllm import *  # noqa: F401,F403  FAKE vllm\n"
                                     "from tests.fixtures.fake_vllm import __version__  # noqa: F401\n")
            releases = os.path.join(d, "released")
            with mock.patch.dict(os.environ, {"FAKE_VLLM_RELEASES": releases}):
                s = Serve(os.path.join(d, "state"), {"load_s": 0, "oom_on": "exp-oom"},
                          pythonpath=os.pathsep.join((shim, WORKER_ROOT)))
            self.addCleanup(s.close)
            answers = []
            for i, exp in enumerate(("exp-a", "exp-a", "exp-oom")):
                run_dir = os.path.join(d, f"run{i}")
                os.makedirs(run_dir)
                cfg = os.path.join(run_dir, "config.json")
                with open(cfg, "w", encoding="utf-8") as fh:
                    json.dump({"run": {"run_id": f"r{i}", "experiment_id": exp, "cycle": 1, "attempt": 1},
                               "experiment": exp_doc("vllm", measurement=QUICK, vllm={"max_num_seqs": 4})}, fh)
                s.send({"op": "run", "config": cfg, "out": run_dir, "log": os.path.join(run_dir, "worker.log"),
                        "attempt_token": f"lem-t-w{i}-a1"})
                answers.append(s.answer() or {})
            self.assertEqual([a.get("kind") for a in answers], ["ok", "ok", "out_of_memory"], answers)
            self.assertEqual([a["engine"]["loaded_for_run"] for a in answers[:2]], [True, False])
            self.assertFalse(answers[1]["recycle"])  # a cached engine: the worker stays for the next run
            self.assertTrue(answers[2]["recycle"])
            self.assertEqual(s.proc.wait(timeout=30), 0)
            with open(releases, encoding="utf-8") as fh:
                self.assertEqual(fh.read().split(), ["4"])  # the one engine, shut down once, on the OOM


if __name__ == "__main__":
    unittest.main()
