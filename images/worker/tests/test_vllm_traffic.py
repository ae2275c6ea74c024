"""The offline vLLM engine under seeded traffic, against a FAKE vllm (tests/fixtures/fake_vllm.py, whose
FakeLLMEngine takes add_request/step with simulated per-token step time): requests submitted at their
arrival times, the exact request count, latency percentiles, the steady window and the `serving` block;
and `traffic:` on a batch-only backend (pytorch, tensorrt) is a config error. No GPU (fake NVML)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import unittest
from typing import Any
from unittest import mock

from lem_worker.config import parse_config
from lem_worker.errors import ConfigError
from lem_worker.serving.settings import serving_cfg
from tests.contract import common_errors
from tests.test_vllm_backend import exp_doc, fake_gpu_kwargs, fresh_fake, run_cli_with, write_shim


def cfg_with(traffic: dict[str, Any], backend: str = "vllm", **over: Any) -> Any:
    return parse_config({"run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1},
                         "experiment": exp_doc(backend, traffic=traffic, **over)})


def run_fake_engine(cfg: Any, refuse: tuple[str, ...] = ()) -> tuple[dict[str, Any], Any]:
    from lem_worker.backends.vllm import run_vllm

    fake = fresh_fake("fake_vllm")
    fake.REFUSE_IDS = set(refuse)
    with mock.patch.dict(sys.modules, {"vllm": fake, "transformers": None}):
        doc = run_vllm(cfg, threading.Event(), **fake_gpu_kwargs())
    llm = fake.INSTANCES[-1]
    assert not llm.generate_calls, "traffic must go through add_request/step, never LLM.generate"
    return doc, llm.llm_engine


class OfflineTrafficTest(unittest.TestCase):
    def test_poisson_arrivals_fake_engine(self) -> None:
        traffic = {"arrival": "poisson", "rate_rps": 40, "requests": 40, "seed": 1}
        doc, engine = run_fake_engine(cfg_with(traffic, vllm={"goodput": {"e2el_ms": 10000}}))
        self.assertEqual(common_errors(doc, 3), [])
        s, m = doc["serving"], doc["metrics"]
        self.assertEqual(s["api"], "engine")
        self.assertEqual(s["warmup_requests"], 2)
        self.assertEqual(len(engine.added), 40 + 2)  # exactly the measured requests + the recorded warm-up
        self.assertEqual((s["requests_planned"], s["requests_sent"], s["requests_completed"], s["requests_failed"]),
                         (40, 40, 40, 0))
        self.assertEqual(m["output_tokens"], 40 * 6)
        self.assertGreater(m["input_tokens"], 0)
        measured = [at for rid, at in engine.added if "-m" in rid]
        self.assertEqual(measured, sorted(measured))  # one submission per arrival, in arrival order
        self.assertLessEqual(abs(m["achieved_rate_rps"] - 40) / 40, 0.15, m["achieved_rate_rps"])
        self.assertEqual(m["requested_rate_rps"], 40)
        for k in ("ttft", "itl", "tpot", "e2e"):
            for q in ("p50", "p90", "p95", "p99"):
                self.assertIsNotNone(s["latency_s"][k][q], (k, q))
        self.assertEqual(s["latency_s"]["itl"]["count"], 40 * 5)  # 6 tokens, one per step: 5 gaps per request
        self.assertIsNotNone(m["latency_p99_s"])
        self.assertEqual(s["goodput"]["good_requests"], 40)
        w = s["steady_window"]
        self.assertTrue(w["formed"])
        self.assertIn("open loop", w["rule"])
        self.assertLess(w["start_s"], w["end_s"])
        self.assertLessEqual(w["end_s"], w["last_send_s"] + 0.5)
        self.assertGreater(m["energy_gpu_raw_j"], 0)  # fake NVML at 200 W over the steady window
        self.assertAlmostEqual(m["j_per_output_token"], m["energy_gpu_raw_j"] / m["window_output_tokens"])
        self.assertEqual(doc["workload"]["kind"], "llm_offline_traffic")
        self.assertEqual(doc["environment"]["library_versions"]["vllm"], "0.0.0+fake")

    def test_closed_loop_concurrency_and_a_refused_request_fake_engine(self) -> None:
        # warm-up requests are w1, w2; measured ones m3.. : m5 is the third measured request
        doc, engine = run_fake_engine(cfg_with({"arrival": "closed", "concurrency": 3, "requests": 12}),
                                      refuse=("lem-r-m5",))
        self.assertEqual(common_errors(doc, 3), [])
        s = doc["serving"]
        self.assertEqual((s["requests_sent"], s["requests_completed"], s["requests_failed"]), (12, 11, 1))
        self.assertIn("add_request: ValueError", next(iter(s["errors"])))
        self.assertEqual(engine.max_running, 3)  # never more than `concurrency` in flight
        self.assertTrue(s["steady_window"]["formed"])
        self.assertIn("concurrency 3", s["steady_window"]["rule"])
        self.assertIsNone(doc["metrics"]["requested_rate_rps"])
        self.assertFalse(doc["validation"]["passed"])  # a failed request fails the gate

    def test_traffic_on_a_batch_only_backend_is_a_config_error(self) -> None:
        from lem_worker.runner import run_experiment

        for backend in ("pytorch", "tensorrt"):
            cfg = cfg_with({"arrival": "poisson", "rate_rps": 4}, backend=backend)
            with self.assertRaises(ConfigError) as ctx:
                run_experiment(cfg, threading.Event())
            msg = str(ctx.exception)
            self.assertIn("experiment.traffic", msg)
            self.assertIn(f"backend {backend} runs its prompt set in batches", msg)
            self.assertIn("traffic applies to backend vllm", msg)
        self.assertIsNone(serving_cfg(cfg_with({"arrival": "closed"}).experiment))  # offline vllm: the engine path


class OfflineTrafficCliTest(unittest.TestCase):
    def run_cli(self, backend: str, fake_vllm: bool) -> tuple[Any, Any, Any]:
        cfg = {"run": {"run_id": "ot-1", "experiment_id": "e", "cycle": 1, "attempt": 1},
               "experiment": exp_doc(backend, traffic={"arrival": "constant", "rate_rps": 50, "requests": 10, "seed": 2},
                                     measurement={"idle_baseline_s": 0, "min_window_s": 0.1})}
        with tempfile.TemporaryDirectory() as d:
            shim = os.path.join(d, "shim")
            if fake_vllm:
                write_shim(shim, "vllm", "from tests.fixtures.fake_vllm import *  # noqa: F401,F403  FAKE vllm\n"
                                         "from tests.fixtures.fake_vllm import __version__  # noqa: F401\n")
            path = os.path.join(d, "CONFIG.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh)
            out = os.path.join(d, "out")
            proc = run_cli_with(shim if fake_vllm else "", ["run", path, "--out", out], {})
            docs = []
            for name in ("result.json", "failure.json"):
                p = os.path.join(out, name)
                if not os.path.exists(p):
                    docs.append(None)
                    continue
                with open(p, encoding="utf-8") as fh:
                    docs.append(json.load(fh))
        return proc, docs[0], docs[1]

    def test_worker_cli_offline_traffic_result_fake_vllm(self) -> None:
        proc, doc, failure = self.run_cli("vllm", True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIsNone(failure)
        self.assertEqual(common_errors(doc, 3), [])  # the worker checked it against result.schema.json too
        self.assertEqual((doc["serving"]["api"], doc["serving"]["requests_completed"]), ("engine", 10))

    def test_worker_cli_refuses_traffic_on_pytorch_with_exit_2(self) -> None:
        proc, doc, failure = self.run_cli("pytorch", False)
        self.assertEqual(proc.returncode, 2, proc.stderr)  # config_error: never retried
        self.assertIsNone(doc)
        self.assertEqual(failure["kind"], "config_error")
        self.assertIn("traffic applies to backend vllm", failure["message"])
        self.assertNotIn("Traceback", proc.stderr)


if __name__ == "__main__":
    unittest.main()
