"""Serving mode against a FAKE OpenAI-compatible server (tests/fixtures/fake_openai_server.py: a real HTTP
server on 127.0.0.1) and a FAKE `vllm` executable: token accounting from usage, TTFT/ITL from the stream,
reasoning, faults, /v1/models checks, seeded arrival processes (goodness of fit), the steady window, the
v3 result with energy from the fake NVML, and `vllm serve` reuse/restart. No real vLLM, no GPU."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import threading
import unittest
from typing import Any
from unittest import mock

import numpy as np

from lem_worker.config import parse_config
from lem_worker.errors import ConfigError
from lem_worker.serving.client import Endpoint, RequestRecord, check_server, request_body, stream_request
from lem_worker.serving.settings import TrafficCfg, serving_cfg, split_endpoint
from lem_worker.serving.traffic import arrival_offsets, inter_arrivals
from tests.contract import common_errors
from tests.fixtures.fake_openai_server import FakeOpenAIServer, Settings
from tests.test_vllm_backend import exp_doc, fake_gpu_kwargs

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def serving_config(base_url: str, **over: Any) -> Any:
    doc = exp_doc("vllm", **over)
    doc.setdefault("vllm", {})["endpoint"] = base_url
    return parse_config({"run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1}, "experiment": doc})


def send_one(srv: FakeOpenAIServer, api: str = "chat", max_tokens: int = 8, fixed: bool = True) -> RequestRecord:
    body = request_body(api, "org/model", "hello there world", max_tokens, fixed, {"temperature": 0.0})
    return stream_request(Endpoint.parse(srv.base_url), api, body, RequestRecord(0), 10.0)


def ks_statistic(sample: np.ndarray, cdf: Any) -> float:
    x = np.sort(sample)
    n = len(x)
    f = cdf(x)
    return float(max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(0, n) / n)))


class ArrivalTest(unittest.TestCase):
    def test_poisson_inter_arrivals_fit_the_exponential_ks(self) -> None:
        rate, n = 20.0, 4000
        gaps = inter_arrivals("poisson", rate, n, 1.0, np.random.default_rng(1))
        d = ks_statistic(gaps, lambda x: 1.0 - np.exp(-rate * x))
        self.assertLess(d, 1.63 / math.sqrt(n))  # KS critical value at alpha = 0.01
        # and the test has power: a constant process at the same rate is rejected
        d_const = ks_statistic(inter_arrivals("constant", rate, n, 1.0, np.random.default_rng(1)) + 1e-9,
                               lambda x: 1.0 - np.exp(-rate * x))
        self.assertGreater(d_const, 1.63 / math.sqrt(n))

    def test_gamma_burstiness_is_the_shape_as_vllm_defines_it(self) -> None:
        rate, n = 10.0, 20000
        for b in (0.25, 1.0, 4.0):
            gaps = inter_arrivals("gamma", rate, n, b, np.random.default_rng(7))
            self.assertAlmostEqual(float(np.mean(gaps)), 1.0 / rate, delta=0.05 / rate)
            shape = float(np.mean(gaps) ** 2 / np.var(gaps))  # method of moments
            self.assertAlmostEqual(shape, b, delta=0.1 * b)
        # burstiness 1 is Poisson: the KS test against the exponential passes
        gaps = inter_arrivals("gamma", rate, 4000, 1.0, np.random.default_rng(3))
        self.assertLess(ks_statistic(gaps, lambda x: 1.0 - np.exp(-rate * x)), 1.63 / math.sqrt(4000))

    def test_offsets_are_seeded_and_rescaled_to_n_over_rate(self) -> None:
        t = TrafficCfg(arrival="poisson", rate_rps=20.0, requests=100, seed=1)
        a, b = arrival_offsets(t, 100), arrival_offsets(t, 100)
        self.assertTrue(np.array_equal(a, b))
        self.assertFalse(np.array_equal(a, arrival_offsets(dataclasses.replace(t, seed=2), 100)))
        self.assertAlmostEqual(float(a[-1]), 100 / 20.0, places=9)
        self.assertTrue(np.all(np.diff(a) >= 0))
        c = arrival_offsets(TrafficCfg(arrival="constant", rate_rps=4.0), 8)
        self.assertTrue(np.allclose(np.diff(c), 0.25))


class ClientTest(unittest.TestCase):
    def test_tokens_come_from_usage_not_chunks(self) -> None:
        with FakeOpenAIServer(Settings(["org/model"], token_delay_s=0.0, tokens_per_chunk=3)) as srv:
            for api in ("chat", "completions"):
                rec = send_one(srv, api, max_tokens=10)
                self.assertTrue(rec.ok, rec.error)
                self.assertEqual(rec.completion_tokens, 10)
                self.assertEqual(len(rec.chunk_times), 4)  # 3+3+3+1 tokens per chunk
                self.assertEqual(rec.prompt_tokens, 3)
            seen = srv.state.seen
            self.assertEqual([s["api"] for s in seen], ["chat", "completions"])
            self.assertTrue(all(s["stream_options"] == {"include_usage": True} for s in seen))
            self.assertTrue(all(s["min_tokens"] == 10 and s["ignore_eos"] is True for s in seen))

    def test_ttft_and_itl_from_the_stream(self) -> None:
        with FakeOpenAIServer(Settings(["org/model"], token_delay_s=0.02, first_token_delay_s=0.15)) as srv:
            rec = send_one(srv, max_tokens=5)
        self.assertTrue(rec.ok)
        assert rec.ttft is not None and rec.tpot is not None
        self.assertGreaterEqual(rec.ttft, 0.15)  # the server waited that long before the first token
        self.assertEqual(len(rec.gaps()), 4)
        # The server spaces the 5 tokens 0.02 s apart after a 0.15 s first token, so the last one cannot
        # arrive before 0.15 + 4 × 0.02 s. Single gaps are not asserted: a client that reads late (a busy
        # host) sees two chunks in one read and a gap near zero, which is right, not a bug.
        self.assertGreaterEqual(rec.chunk_times[-1] - rec.sent, 0.15 + 4 * 0.019)
        self.assertAlmostEqual(sum(rec.gaps()), rec.chunk_times[-1] - rec.chunk_times[0], places=9)
        self.assertGreater(rec.tpot, 0)

    def test_reasoning_counts_in_ttft_and_separately(self) -> None:
        with FakeOpenAIServer(Settings(["org/model"], token_delay_s=0.0, reasoning_tokens=4, usage_reasoning=True)) as srv:
            rec = send_one(srv, max_tokens=6)
        self.assertEqual((rec.reasoning_chunks, rec.content_chunks), (4, 2))
        self.assertEqual(rec.completion_tokens, 6)
        self.assertEqual(rec.reasoning_tokens, 4)
        self.assertEqual(rec.first_token, rec.chunk_times[0])

    def test_faults_fail_the_request_only(self) -> None:
        with FakeOpenAIServer(Settings(["org/model"], token_delay_s=0.0, drop_at=(1,), error_at=(2,))) as srv:
            dropped, err, fine = send_one(srv), send_one(srv), send_one(srv)
        self.assertFalse(dropped.ok)
        self.assertIn("dropped", dropped.error or "")
        self.assertFalse(err.ok)
        self.assertIn("HTTP 500", err.error or "")
        self.assertTrue(fine.ok)

    def test_models_and_health_checks(self) -> None:
        with FakeOpenAIServer(Settings(["org/model", "other/m"], health=False)) as srv:
            seen = check_server(srv.base_url, srv.origin, "org/model")
            self.assertEqual(seen["health"], "not provided (404)")
            with self.assertRaises(ConfigError) as cm:
                check_server(srv.base_url, srv.origin, "org/absent")
            self.assertIn("serves: org/model, other/m", str(cm.exception))

    def test_urls_keep_ports_and_paths(self) -> None:
        self.assertEqual(split_endpoint("http://10.0.0.2:8001/v1/", "x"), ("http://10.0.0.2:8001/v1", "http://10.0.0.2:8001"))
        self.assertEqual(split_endpoint("https://h.example:18000/proxy/v1", "x")[0], "https://h.example:18000/proxy/v1")
        self.assertEqual(split_endpoint("http://localhost:8000", "x")[0], "http://localhost:8000/v1")
        self.assertEqual(Endpoint.parse("http://127.0.0.1:8001/v1").port, 8001)
        with self.assertRaises(ConfigError):
            split_endpoint("http://h:80x/v1", "experiment.vllm.endpoint")


class ServingRunTest(unittest.TestCase):
    def run_doc(self, srv: FakeOpenAIServer, traffic: dict[str, Any], **over: Any) -> dict[str, Any]:
        from lem_worker.backends.vllm import run_vllm

        cfg = serving_config(srv.base_url, traffic=traffic, **over)
        return run_vllm(cfg, threading.Event(), **fake_gpu_kwargs())

    def test_poisson_run_result(self) -> None:
        with FakeOpenAIServer(Settings(["org/model"], token_delay_s=0.001, drop_at=(10,))) as srv:
            doc = self.run_doc(srv, {"arrival": "poisson", "rate_rps": 40, "requests": 40, "seed": 1},
                               vllm={"goodput": {"e2el_ms": 10000}, "scrape_metrics": True})
            seen = srv.state.counts["chat"]
        self.assertEqual(common_errors(doc, 3), [])
        s, m = doc["serving"], doc["metrics"]
        self.assertEqual(seen, 40 + s["warmup_requests"])  # exactly the measured requests + recorded warm-up
        self.assertEqual(s["warmup_requests"], 2)
        self.assertEqual((s["requests_sent"], s["requests_completed"], s["requests_failed"]), (40, 39, 1))
        self.assertEqual(m["output_tokens"], 39 * 6)
        for k in ("ttft", "itl", "tpot", "e2e"):
            for q in ("p50", "p90", "p95", "p99"):
                self.assertIsNotNone(s["latency_s"][k][q], (k, q))
        # completions can't outpace the offered schedule (last send at N / rate); the 15 % closeness is the e2e's
        self.assertLessEqual(m["achieved_rate_rps"], 39 / (40 / 40.0) + 1e-9)
        self.assertEqual(m["requested_rate_rps"], 40)
        self.assertEqual(s["goodput"]["good_requests"], 39)
        w = s["steady_window"]
        self.assertTrue(w["formed"])
        self.assertLessEqual(w["end_s"], w["last_send_s"] + 0.5)
        self.assertGreater(m["energy_gpu_raw_j"], 0)  # fake NVML at 200 W
        self.assertAlmostEqual(m["j_per_output_token"], m["energy_gpu_raw_j"] / m["window_output_tokens"])
        self.assertIn("whole-GPU", s["energy"]["attribution"])
        self.assertFalse(doc["validation"]["passed"])  # a failed request fails the gate
        self.assertEqual(doc["workload"]["kind"], "llm_serving")
        series = 'vllm:request_success_total{model="x"}'
        sm = s["server_metrics"]
        self.assertEqual(sm["after"]["series"][series] - sm["before"]["series"][series], 40)
        samples = sm["timeline"]["samples"]
        self.assertGreaterEqual(len(samples), 1)  # scraped during the traffic, from its start
        self.assertIn(series, samples[0]["series"])
        self.assertLessEqual(samples[0]["series"][series], sm["after"]["series"][series])

    def test_closed_loop_steady_window_and_no_gpu(self) -> None:
        from lem_worker.backends.vllm import run_vllm

        with FakeOpenAIServer(Settings(["org/model"], token_delay_s=0.001)) as srv:
            cfg = serving_config(srv.base_url, traffic={"arrival": "closed", "concurrency": 3, "requests": 20})
            doc = run_vllm(cfg, threading.Event(), rapl_root="/nonexistent", use_env=False, nvml_module=None)
            seen = srv.state.counts["chat"]
        self.assertEqual(seen, 22)
        self.assertEqual(common_errors(doc, 3), [])
        self.assertIsNone(doc["metrics"]["j_per_output_token"])
        self.assertTrue(doc["unmeasured"]["j_per_output_token"])
        self.assertIsNone(doc["serving"]["energy"]["j_per_output_token"])
        self.assertTrue(doc["serving"]["steady_window"]["formed"])
        self.assertIn("concurrency 3", doc["serving"]["steady_window"]["rule"])
        self.assertIsNone(doc["metrics"]["requested_rate_rps"])

    def test_slow_first_token_misses_the_goodput_target(self) -> None:
        with FakeOpenAIServer(Settings(["org/model"], token_delay_s=0.0, slow_first_at=(4,), slow_first_s=0.4)) as srv:
            doc = self.run_doc(srv, {"arrival": "closed", "concurrency": 2, "requests": 12},
                               vllm={"goodput": {"ttft_ms": 300}}, warmup={"mode": "fixed", "iterations": 1})
        s = doc["serving"]
        self.assertEqual(s["requests_failed"], 0)
        self.assertEqual(s["goodput"]["good_requests"], 11)  # request 4 (3rd measured) waited 0.4 s for its first token
        self.assertGreaterEqual(s["latency_s"]["ttft"]["p99"], 0.3)
        self.assertAlmostEqual(doc["metrics"]["goodput_fraction"], 11 / 12)

    def test_duration_bound_and_too_few_requests_for_a_steady_window(self) -> None:
        with FakeOpenAIServer(Settings(["org/model"], token_delay_s=0.002)) as srv:
            timed = self.run_doc(srv, {"arrival": "closed", "concurrency": 2, "duration_s": 0.4})
            few = self.run_doc(srv, {"arrival": "closed", "concurrency": 4, "requests": 5})
        self.assertIsNone(timed["serving"]["requests_planned"])
        self.assertGreater(timed["serving"]["requests_completed"], 2)
        self.assertTrue(timed["serving"]["steady_window"]["formed"])
        self.assertIn("end of sending", timed["serving"]["steady_window"]["rule"])
        self.assertFalse(few["serving"]["steady_window"]["formed"])  # N - B - 1 = 0 finish before B first tokens
        self.assertIn("no_steady_window", [f["gate"] for f in few["validation"]["flags"]])
        self.assertIsNone(few["metrics"]["steady_window_s"])

    def test_traffic_without_endpoint_is_the_offline_engine(self) -> None:
        cfg = parse_config({"run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1},
                            "experiment": exp_doc("vllm", traffic={"arrival": "closed"})})
        self.assertIsNone(serving_cfg(cfg.experiment))  # per-request submission offline: tests/test_vllm_traffic.py


class ManagedServerTest(unittest.TestCase):
    def test_vllm_serve_started_reused_and_restarted_fake_vllm(self) -> None:
        from lem_worker.serving.manage import ensure_server, state_path, stop_server

        with tempfile.TemporaryDirectory() as tmp:
            argv_log = os.path.join(tmp, "argv.jsonl")
            import socket

            with socket.socket() as s_:
                s_.bind(("127.0.0.1", 0))
                port = s_.getsockname()[1]
            env = {"LEM_VLLM_EXECUTABLE": os.path.join(FIXTURES, "fake_vllm_cli.py"), "LEM_SERVE_STATE_DIR": tmp,
                   "FAKE_VLLM_ARGV_LOG": argv_log}
            url = f"http://127.0.0.1:{port}/v1"
            with mock.patch.dict(os.environ, env):
                try:
                    cfg = serving_config(url, vllm={"mode": "server", "endpoint": url, "max_num_seqs": 8})
                    sc = serving_cfg(cfg.experiment)
                    assert sc is not None and sc.managed
                    notes: list[str] = []
                    first = ensure_server(cfg.experiment, sc, threading.Event(), notes)
                    second = ensure_server(cfg.experiment, sc, threading.Event(), notes)
                    self.assertFalse(first["reused"])
                    self.assertTrue(second["reused"])
                    self.assertEqual(first["pid"], second["pid"])
                    check_server(url, f"http://127.0.0.1:{port}", "org/model")
                    cfg2 = serving_config(url, vllm={"mode": "server", "endpoint": url, "max_num_seqs": 16})
                    sc2 = serving_cfg(cfg2.experiment)
                    assert sc2 is not None
                    third = ensure_server(cfg2.experiment, sc2, threading.Event(), notes)
                    self.assertFalse(third["reused"])
                    self.assertNotEqual(third["pid"], first["pid"])
                    with open(argv_log) as f:
                        starts = [json.loads(line) for line in f]
                    self.assertEqual(len(starts), 2)
                    self.assertEqual(starts[0][:2], ["serve", "org/model"])
                    self.assertIn("--max-num-seqs", starts[0])
                    self.assertEqual(starts[0][starts[0].index("--max-num-seqs") + 1], "8")
                    self.assertEqual(starts[1][starts[1].index("--max-num-seqs") + 1], "16")
                    self.assertIn("--served-model-name", starts[0])
                    from lem_worker.serving.manage import alive, stop_managed_servers

                    stop_managed_servers(notes)  # what an offline vllm run does before loading its engine
                    self.assertFalse(alive(third["pid"]))
                    self.assertFalse(os.path.exists(state_path(port)))
                finally:
                    try:
                        with open(state_path(port)) as f:
                            stop_server(json.load(f)["pid"], 5.0)
                    except OSError:
                        pass


if __name__ == "__main__":
    unittest.main()
