"""TensorRT-LLM backend against a FAKE tensorrt_llm module (tests/fixtures/fake_tensorrt_llm.py)
injected into sys.modules: argument plumbing, token counting from streamed ids, streaming TTFT/ITL,
v3 result validity, and the CLI end to end. No real TensorRT-LLM, no GPU."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import unittest
from typing import Any
from unittest import mock

from lem_worker.errors import ConfigError, WorkerError
from tests.contract import common_errors
from tests.test_vllm_backend import NO_SPLIT, config, fake_gpu_kwargs, fresh_fake, run_cli_with, write_shim


def trt_config(**over: Any) -> Any:
    return config("tensorrt", **over)


def fake_modules(fake: Any) -> dict[str, Any]:
    return {"tensorrt_llm": fake, "tensorrt_llm.llmapi": fake.llmapi, "transformers": None}


class TrtArgumentTest(unittest.TestCase):
    def test_typed_llm_api_fields_reach_the_fake_llm(self) -> None:
        from lem_worker.backends.tensorrt import engine_kwargs

        fake = fresh_fake("fake_tensorrt_llm")
        cfg = trt_config(tensorrt={"pp_size": 2, "max_seq_len": 999, "enable_chunked_prefill": True,
                                   "kv_cache": {"enable_block_reuse": False, "dtype": "fp8"},
                                   "kv_cache_free_gpu_memory_fraction": 0.5, "cuda_graphs": True,
                                   "scheduler_policy": "max_utilization"})
        kw, record = engine_kwargs(cfg.experiment, fake.llmapi, "m", own_tokenizer=False, skip_tokenizer=False)
        self.assertEqual(kw["pipeline_parallel_size"], 2)
        self.assertEqual(kw["max_seq_len"], 999)
        self.assertEqual(kw["kv_cache_config"], fake.KvCacheConfig(free_gpu_memory_fraction=0.5, enable_block_reuse=False,
                                                                   dtype="fp8"))
        self.assertEqual(kw["cuda_graph_config"], fake.CudaGraphConfig())
        self.assertIs(kw["scheduler_config"].capacity_scheduler_policy, fake.CapacitySchedulerPolicy.MAX_UTILIZATION)
        self.assertEqual(record["scheduler_config"], {"capacity_scheduler_policy": "MAX_UTILIZATION"})
        fake.LLM(**kw)  # the fake rejects unknown LLM arguments
        json.dumps(record)

    def test_engine_kwargs_build_kv_quant(self) -> None:
        from lem_worker.backends.tensorrt import engine_kwargs

        fake = fresh_fake("fake_tensorrt_llm")
        cfg = trt_config(model={"id": "org/model", "revision": "abc"}, precision="fp8", max_input_tokens=100,
                         max_output_tokens=28, tensorrt={"tp_size": 2, "max_batch_size": 16, "max_num_tokens": 2048,
                                                         "kv_cache_free_gpu_memory_fraction": 0.7})
        kw, record = engine_kwargs(cfg.experiment, fake.llmapi, "org/model", own_tokenizer=False, skip_tokenizer=False)
        self.assertEqual((kw["model"], kw["tensor_parallel_size"], kw["dtype"], kw["revision"]),
                         ("org/model", 2, "bfloat16", "abc"))
        # TensorRT-LLM 1.x (PyTorch flow): scheduler limits are LLM arguments, no BuildConfig
        self.assertEqual((kw["max_batch_size"], kw["max_num_tokens"], kw["max_seq_len"]), (16, 2048, 128))
        self.assertNotIn("build_config", kw)
        self.assertEqual(kw["kv_cache_config"].free_gpu_memory_fraction, 0.7)
        self.assertIs(kw["quant_config"].quant_algo, fake.QuantAlgo.FP8)
        self.assertEqual((record["max_batch_size"], record["max_seq_len"]), (16, 128))
        del fake.llmapi.TorchLlmArgs  # a 0.x release: the same limits go into the engine's BuildConfig
        kw, record = engine_kwargs(cfg.experiment, fake.llmapi, "org/model", own_tokenizer=False, skip_tokenizer=False)
        self.assertEqual(kw["build_config"], fake.BuildConfig(max_batch_size=16, max_num_tokens=2048, max_seq_len=128))
        self.assertEqual(record["build_config"], {"max_seq_len": 128, "max_batch_size": 16, "max_num_tokens": 2048})
        self.assertEqual(record["quant_config"], {"quant_algo": "FP8"})
        json.dumps(record)  # the record is plain JSON

    def test_dtypes_engine_dir_and_no_weights(self) -> None:
        from lem_worker.backends.tensorrt import engine_kwargs

        fake = fresh_fake("fake_tensorrt_llm")
        for prec, dtype in (("fp32", "float32"), ("fp16", "float16"), ("bf16", "bfloat16")):
            kw, _ = engine_kwargs(trt_config(precision=prec).experiment, fake.llmapi, "m", False, False)
            self.assertEqual(kw["dtype"], dtype)
            self.assertNotIn("quant_config", kw)
            self.assertNotIn("kv_cache_config", kw)
        cfg = trt_config(model={"id": "org/m", "no_weights": True}, tensorrt={"engine_dir": "/engines/x", "max_batch_size": 4})
        kw, _ = engine_kwargs(cfg.experiment, fake.llmapi, "/engines/x", own_tokenizer=True, skip_tokenizer=False)
        self.assertEqual((kw["model"], kw["tokenizer"]), ("/engines/x", "org/m"))
        for k in ("build_config", "max_batch_size", "quant_config", "load_format", "revision"):
            self.assertNotIn(k, kw)  # a prebuilt engine is used as built
        kw, _ = engine_kwargs(trt_config(model={"id": "org/m", "no_weights": True}).experiment, fake.llmapi, "org/m", False, True)
        self.assertEqual((kw["load_format"], kw["skip_tokenizer_init"]), ("dummy", True))

    def test_sampling_kwargs(self) -> None:
        from lem_worker.backends.tensorrt import sampling_kwargs

        greedy = sampling_kwargs(trt_config().experiment, 6, True, None, None)
        self.assertEqual(greedy, {"max_tokens": 6, "detokenize": False, "min_tokens": 6, "ignore_eos": True})
        creative = sampling_kwargs(trt_config(decoder={"preset": "creative", "fixed_length": False}).experiment, 6,
                                   False, 2, 0)
        self.assertEqual((creative["temperature"], creative["top_p"], creative["top_k"], creative["end_id"],
                          creative["pad_id"]), (1.3, 0.98, 100, 2, 0))
        self.assertNotIn("min_tokens", creative)

    def test_config_rules(self) -> None:
        with self.assertRaises(ConfigError):
            trt_config(batching={"strategy": "dynamic", "max_tokens_per_batch": 100})
        with self.assertRaises(ConfigError):
            trt_config(tensorrt={"kv_cache_free_gpu_memory_fraction": 0})
        t = trt_config(tensorrt={"engine_dir": "/e"}).experiment.tensorrt
        self.assertEqual((t.tp_size, t.engine_dir, t.max_batch_size), (1, "/e", None))


class TrtRunTest(unittest.TestCase):
    def run_fake(self, cfg: Any, eos_after: Any = None) -> tuple[dict[str, Any], Any]:
        from lem_worker.backends.tensorrt import run_tensorrt

        fake = fresh_fake("fake_tensorrt_llm")
        fake.EOS_AFTER = eos_after
        with mock.patch.dict(sys.modules, fake_modules(fake)):
            doc = run_tensorrt(cfg, threading.Event(), **fake_gpu_kwargs())
        return doc, fake.INSTANCES[-1]

    def test_streamed_metrics_and_token_counts(self) -> None:
        from lem_worker.prompts import builtin_prompts
        from tests.fixtures.fake_tensorrt_llm import FakeTokenizer

        doc, llm = self.run_fake(trt_config())
        self.assertEqual(common_errors(doc, 3), [])
        self.assertEqual(doc["backend"], "tensorrt")
        m = doc["metrics"]
        reps = int(m["repetitions"])
        self.assertEqual(m["output_tokens"], 7 * 6 * reps)
        tok = FakeTokenizer()
        self.assertEqual(m["input_tokens"], sum(min(len(tok(t)["input_ids"]), 48) for t in builtin_prompts("short")[:7]) * reps)
        for k in ("ttft_mean_s", "itl_mean_s", "itl_p50_s", "itl_p99_s"):
            self.assertIsNotNone(m[k], k)
        self.assertLessEqual(m["ttft_p50_s"], m["latency_p50_s"])
        self.assertAlmostEqual(m["j_per_output_token"], m["energy_gpu_raw_j"] / m["output_tokens"])
        calls = llm.async_calls
        pre_reps = doc["window"]["prefill_repetitions"]
        self.assertEqual(len(calls), 3 + 3 + 7 * reps + 7 * pre_reps,
                         "warm-up (2 batches of 3) + one generate_async per request per pass, nothing twice")
        self.assertTrue(all(c["streaming"] for c in calls))
        self.assertEqual({c["sampling"]["max_tokens"] for c in calls[-7 * pre_reps:]}, {1})
        self.assertEqual(llm.kwargs["max_seq_len"], 54)
        self.assertEqual(doc["workload"]["engine_kwargs"]["max_seq_len"], 54)
        self.assertTrue(doc["validation"]["passed"], doc["validation"])
        self.assertIsNotNone(doc["phases"]["decode"]["energy_j"])

    def test_variable_length_and_no_weights(self) -> None:
        doc, llm = self.run_fake(trt_config(decoder={"preset": "deterministic", "fixed_length": False},
                                            measurement=NO_SPLIT), eos_after=2)
        self.assertEqual(doc["metrics"]["output_tokens"], 2 * doc["metrics"]["requests"])
        doc, llm = self.run_fake(trt_config(model={"id": "meta-llama/Llama-3.2-1B", "no_weights": True,
                                                   "architecture": "qwen2.5-0.5b"},
                                            prompts={"source": "synthetic", "input_len": 5, "count": 3},
                                            measurement=NO_SPLIT))
        kw = llm.kwargs
        self.assertEqual((kw["load_format"], kw["skip_tokenizer_init"]), ("dummy", True))
        self.assertEqual(llm.local_config["model_type"], "qwen2")
        s = llm.async_calls[0]["sampling"]
        self.assertEqual((s["end_id"], s["pad_id"], s["ignore_eos"]), (2, 0, True))
        self.assertEqual(doc["metrics"]["input_tokens"], 3 * 5 * doc["metrics"]["repetitions"])

    def test_missing_tensorrt_llm_names_the_image(self) -> None:
        from lem_worker.backends.tensorrt import run_tensorrt

        with mock.patch.dict(sys.modules, {"tensorrt_llm": None}):
            with self.assertRaises(WorkerError) as cm:
                run_tensorrt(trt_config(), threading.Event())
        self.assertIn("use the lem-tensorrt image", str(cm.exception))


class TrtCliTest(unittest.TestCase):
    def test_cli_end_to_end_with_fake_tensorrt_llm(self) -> None:
        cfg = {"run": {"run_id": "trt-1", "experiment_id": "e", "cycle": 1, "attempt": 1},
               "experiment": {"backend": "tensorrt", "model": {"id": "org/model"}, "max_output_tokens": 4,
                              "prompts": {"source": "builtin", "count": 5}, "batching": {"batch_size": 2},
                              "warmup": {"iterations": 1}, "measurement": {"idle_baseline_s": 0, "min_window_s": 0.1}}}
        with tempfile.TemporaryDirectory() as d:
            shim = os.path.join(d, "shim")
            write_shim(shim, "tensorrt_llm", "from tests.fixtures.fake_tensorrt_llm import *  # noqa: F401,F403  FAKE\n"
                                             "from tests.fixtures.fake_tensorrt_llm import __version__, llmapi  # noqa: F401\n")
            with open(os.path.join(shim, "tensorrt_llm", "llmapi.py"), "w", encoding="utf-8") as fh:
                fh.write("from tests.fixtures.fake_tensorrt_llm import BuildConfig, KvCacheConfig, QuantAlgo, QuantConfig  # noqa: F401\n")
            path = os.path.join(d, "CONFIG.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh)
            out = os.path.join(d, "out")
            proc = run_cli_with(shim, ["run", path, "--out", out], {})
            self.assertEqual(proc.returncode, 0, proc.stderr)
            with open(os.path.join(out, "result.json"), encoding="utf-8") as fh:
                doc = json.load(fh)
        self.assertEqual(common_errors(doc, 3), [])
        self.assertEqual((doc["schema_version"], doc["backend"]), (3, "tensorrt"))
        m, u = doc["metrics"], doc["unmeasured"]
        self.assertEqual(m["output_tokens"], 5 * 4 * m["repetitions"])
        self.assertIsNotNone(m["ttft_mean_s"])
        self.assertIsNone(m["j_per_output_token"])
        self.assertIn("j_per_output_token", u)

    def test_cli_without_tensorrt_llm_exits_3(self) -> None:
        try:
            import tensorrt_llm  # noqa: F401

            self.skipTest("a real tensorrt_llm is installed in this interpreter")
        except ImportError:
            pass
        cfg = {"run": {"run_id": "trt-2", "experiment_id": "e", "cycle": 1, "attempt": 1},
               "experiment": {"backend": "tensorrt", "model": {"id": "org/model"}}}
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "CONFIG.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh)
            proc = run_cli_with("", ["run", path, "--out", os.path.join(d, "out")], {})
            self.assertFalse(os.path.exists(os.path.join(d, "out", "result.json")))
        self.assertEqual(proc.returncode, 3, proc.stderr)  # missing_dependency, found before anything loads
        self.assertIn("tensorrt_llm (needed by backend tensorrt; use the lem-tensorrt image", proc.stderr)


if __name__ == "__main__":
    unittest.main()
