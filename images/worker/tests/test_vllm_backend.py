"""vLLM backend against a FAKE vllm module (tests/fixtures/fake_vllm.py) injected into sys.modules:
argument plumbing, token counting from returned ids, timing from RequestOutput.metrics, v3 result
validity, and the CLI end to end. No real vLLM, no GPU (GPU energy comes from the fake NVML)."""
from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import threading
import unittest
from typing import Any
from unittest import mock

from lem_worker.config import parse_config
from lem_worker.errors import ConfigError, WorkerError
from tests.contract import common_errors

WORKER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def exp_doc(backend: str, **over: Any) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "backend": backend,
        "model": {"id": "org/model"},
        "precision": "bf16",
        "batching": {"strategy": "static", "batch_size": 3},
        "max_input_tokens": 48,
        "max_output_tokens": 6,
        "prompts": {"source": "builtin", "name": "short", "count": 7},
        "warmup": {"mode": "fixed", "iterations": 2},
        "measurement": {"idle_baseline_s": 0.2, "min_window_s": 0.2, "sample_interval_ms": 50},
        "extra": {},
    }
    exp.update(over)
    return exp


#: The test measurement with the prefill/decode split off.
NO_SPLIT: dict[str, Any] = {"idle_baseline_s": 0.2, "min_window_s": 0.2, "sample_interval_ms": 50, "prefill_split": False}


def config(backend: str = "vllm", **over: Any) -> Any:
    return parse_config({"run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1},
                         "experiment": exp_doc(backend, **over)})


def fresh_fake(name: str) -> Any:
    mod = importlib.import_module(f"tests.fixtures.{name}")
    return importlib.reload(mod)


def fake_gpu_kwargs() -> dict[str, Any]:
    from tests.fixtures.fake_nvml import FakeDevice, FakeNvml, RealTimeClock, Steady, uuid

    clock = RealTimeClock()
    return {"nvml_module": FakeNvml([FakeDevice(uuid(0), Steady(200.0))], clock), "clock": clock, "probe_s": 0.2,
            "rapl_root": "/nonexistent", "use_env": False}


class VllmArgumentTest(unittest.TestCase):
    def test_typed_engine_fields_and_extra_engine_args_reach_the_fake_llm(self) -> None:
        from lem_worker.backends.vllm import engine_kwargs
        from lem_worker.errors import ConfigError

        spec = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3}
        cfg = config(vllm={"pipeline_parallel_size": 2, "max_num_batched_tokens": 8192, "kv_cache_dtype": "fp8",
                           "block_size": 32, "enable_chunked_prefill": True, "speculative_config": spec,
                           "compilation_level": 3, "async_scheduling": True},
                     extra={"engine_args": {"tokenizer_mode": "slow"}})
        kw = engine_kwargs(cfg.experiment, "m", False, False)
        self.assertEqual({k: kw[k] for k in ("pipeline_parallel_size", "max_num_batched_tokens", "kv_cache_dtype",
                                             "block_size", "enable_chunked_prefill", "speculative_config",
                                             "compilation_config", "async_scheduling", "tokenizer_mode")},
                         {"pipeline_parallel_size": 2, "max_num_batched_tokens": 8192, "kv_cache_dtype": "fp8",
                          "block_size": 32, "enable_chunked_prefill": True, "speculative_config": spec,
                          "compilation_config": {"level": 3}, "async_scheduling": True, "tokenizer_mode": "slow"})
        fake = fresh_fake("fake_vllm")
        fake.LLM(**kw)  # the fake rejects unknown engine arguments, as vllm.LLM does
        clash = config(vllm={"max_num_batched_tokens": 8}, extra={"engine_args": {"max_num_batched_tokens": 9}})
        with self.assertRaisesRegex(ConfigError, "extra.engine_args: max_num_batched_tokens is set by a typed field"):
            engine_kwargs(clash.experiment, "m", False, False)

    def test_engine_kwargs_plumbing(self) -> None:
        from lem_worker.backends.vllm import engine_kwargs

        cfg = config(model={"id": "org/model", "revision": "abc", "trust_remote_code": True}, precision="fp16",
                     quantization={"method": "awq"},
                     vllm={"tensor_parallel_size": 2, "gpu_memory_utilization": 0.8, "max_num_seqs": 64,
                           "max_model_len": 4096, "enforce_eager": True, "enable_prefix_caching": False},
                     prompts={"source": "builtin", "name": "short", "count": 7, "seed": 7})
        kw = engine_kwargs(cfg.experiment, "org/model", own_tokenizer=False, skip_tokenizer=False)
        self.assertEqual(kw, {"model": "org/model", "dtype": "float16", "tensor_parallel_size": 2,
                              "gpu_memory_utilization": 0.8, "enforce_eager": True, "trust_remote_code": True,
                              "seed": 7, "disable_log_stats": False, "revision": "abc", "quantization": "awq",
                              "max_num_seqs": 64, "max_model_len": 4096, "enable_prefix_caching": False})

    def test_dtype_quantization_and_no_weights(self) -> None:
        from lem_worker.backends.vllm import engine_kwargs

        for prec, dtype in (("fp32", "float32"), ("fp16", "float16"), ("bf16", "bfloat16")):
            kw = engine_kwargs(config(precision=prec).experiment, "m", False, False)
            self.assertEqual(kw["dtype"], dtype)
            self.assertNotIn("quantization", kw)
            self.assertNotIn("load_format", kw)
            self.assertNotIn("enable_prefix_caching", kw)  # unset: the engine's default
        kw = engine_kwargs(config(precision="fp8").experiment, "m", False, False)
        self.assertEqual((kw["dtype"], kw["quantization"]), ("bfloat16", "fp8"))
        kw = engine_kwargs(config(quantization={"method": "gptq"}).experiment, "m", False, False)
        self.assertEqual(kw["quantization"], "gptq")
        kw = engine_kwargs(config(model={"id": "org/m", "no_weights": True, "revision": "r1"}).experiment,
                           "/tmp/arch", own_tokenizer=True, skip_tokenizer=False)
        self.assertEqual(kw["load_format"], "dummy")
        self.assertEqual((kw["model"], kw["tokenizer"], kw["tokenizer_revision"]), ("/tmp/arch", "org/m", "r1"))
        self.assertNotIn("revision", kw)  # the local config dir has no revisions

    def test_sampling_kwargs_presets_and_fixed_length(self) -> None:
        from lem_worker.backends.vllm import sampling_kwargs

        greedy = sampling_kwargs(config().experiment, 6, fixed=True)
        self.assertEqual(greedy, {"n": 1, "max_tokens": 6, "detokenize": False, "min_tokens": 6, "ignore_eos": True,
                                  "temperature": 0.0})
        factual = sampling_kwargs(config(decoder={"preset": "factual", "fixed_length": False}).experiment, 6, fixed=False)
        self.assertEqual((factual["temperature"], factual["top_p"], factual["top_k"]), (0.3, 0.9, 20))
        self.assertNotIn("min_tokens", factual)
        self.assertNotIn("ignore_eos", factual)
        explicit = sampling_kwargs(config(decoder={"preset": "standard", "top_k": 0, "temperature": 0.7,
                                                   "repetition_penalty": 1.1}).experiment, 4, fixed=True)
        self.assertNotIn("top_k", explicit)  # 0 = no limit: vLLM's default
        self.assertEqual((explicit["temperature"], explicit["repetition_penalty"]), (0.7, 1.1))

    def test_request_timing_both_metric_shapes(self) -> None:
        from lem_worker.backends.vllm import request_timing
        from tests.fixtures.fake_vllm import RequestMetrics, RequestStateStats

        v0 = RequestMetrics(arrival_time=100.0, last_token_time=100.5, first_scheduled_time=100.0,
                            first_token_time=100.1, time_in_queue=0.0)
        ttft, lat, itl = request_timing(v0, 100.0, 5)  # type: ignore[misc]
        self.assertAlmostEqual(ttft, 0.1)
        self.assertAlmostEqual(lat, 0.5)
        self.assertAlmostEqual(itl, 0.1)
        v1 = RequestStateStats(num_generation_tokens=3, arrival_time=100.02, first_token_ts=50.0, last_token_ts=50.2,
                               first_token_latency=0.08)
        ttft, lat, itl = request_timing(v1, 100.0, 3)  # type: ignore[misc]
        self.assertAlmostEqual(ttft, 0.1)
        self.assertAlmostEqual(lat, 0.3)
        self.assertAlmostEqual(itl, 0.1)
        self.assertIsNone(request_timing(None, 100.0, 3))
        self.assertIsNone(request_timing(RequestStateStats(), 100.0, 3))  # stats disabled: all zero
        self.assertEqual(request_timing(v0, 100.0, 1)[2], None)  # type: ignore[index]

    def test_config_rules(self) -> None:
        with self.assertRaises(ConfigError):
            config(batching={"strategy": "sorted", "batch_size": 2})
        with self.assertRaises(ConfigError):
            config(quantization={"method": "bnb_4bit"})
        with self.assertRaises(ConfigError):
            config(vllm={"gpu_memory_utilization": 1.5})
        with self.assertRaises(ConfigError):
            config(vllm={"tensor_parallel_size": 0})
        v = config(vllm={"max_num_seqs": 8}).experiment.vllm
        self.assertEqual((v.tensor_parallel_size, v.gpu_memory_utilization, v.max_num_seqs, v.enable_prefix_caching),
                         (1, 0.9, 8, None))


class VllmRunTest(unittest.TestCase):
    def run_fake(self, cfg: Any, metrics: str = "v0", eos_after: Any = None, fail_calls: Any = ()) -> tuple[dict[str, Any], Any]:
        from lem_worker.backends.vllm import run_vllm

        fake = fresh_fake("fake_vllm")
        fake.METRICS = metrics
        fake.EOS_AFTER = eos_after
        fake.FAIL_CALLS = set(fail_calls)
        with mock.patch.dict(sys.modules, {"vllm": fake, "transformers": None}):
            doc = run_vllm(cfg, threading.Event(), **fake_gpu_kwargs())
        return doc, fake.INSTANCES[-1]

    def test_metrics_tokens_timing_and_plumbing(self) -> None:
        from lem_worker.prompts import builtin_prompts
        from tests.fixtures.fake_vllm import FakeTokenizer

        doc, llm = self.run_fake(config())
        self.assertEqual(common_errors(doc, 3), [])
        self.assertEqual(doc["backend"], "vllm")
        m = doc["metrics"]
        reps = int(m["repetitions"])
        self.assertEqual(m["requests"], 7 * reps)
        self.assertEqual(m["output_tokens"], 7 * 6 * reps, "fixed length: every request returns max_tokens ids")
        tok = FakeTokenizer()
        expected_in = sum(min(len(tok(t)["input_ids"]), 48) for t in builtin_prompts("short")[:7])
        self.assertEqual(m["input_tokens"], expected_in * reps)
        self.assertAlmostEqual(m["j_per_output_token"], m["energy_gpu_raw_j"] / m["output_tokens"])
        self.assertIsNotNone(m["ttft_mean_s"])
        # extended efficiency metrics: engine counters over the steady window, NVML memory and utilisation
        self.assertEqual((m["prefix_cache_hit_rate"], m["kv_cache_usage_pct"]), (0.5, 25.0))
        self.assertEqual((m["gpu_memory_peak_gib"], m["gpu_util_mean_pct"]), (4.0, 87.0))
        self.assertAlmostEqual(m["batch_fill"], 7 / 9)
        self.assertAlmostEqual(m["output_tokens_per_s_per_gib"], m["output_tokens_per_s"] / 4.0, places=6)
        self.assertIn("continuous batching", doc["unmeasured"]["padding_overhead"])
        # 100 blocks x 16 tokens x (2 x 2 layers x 2 KV heads x 16 head dim x 2 bytes bf16)
        self.assertEqual(m["kv_cache_gib"], 100 * 16 * 256 / 1024 ** 3)
        self.assertGreater(m["flops_per_output_token_estimate"], 0)
        self.assertTrue(any("ESTIMATE" in n for n in doc["notes"]))
        self.assertIn("offline API", doc["unmeasured"]["gpu_memory_model_gib"])
        self.assertLessEqual(m["ttft_p50_s"], m["latency_p50_s"])
        self.assertGreater(m["itl_mean_s"], 0)
        self.assertIsNone(m["itl_p50_s"])
        self.assertIn("per decoding step", doc["unmeasured"]["itl_p50_s"])
        self.assertEqual(llm.kwargs["load_format"] if "load_format" in llm.kwargs else None, None)
        self.assertEqual((llm.kwargs["model"], llm.kwargs["dtype"], llm.kwargs["tensor_parallel_size"]),
                         ("org/model", "bfloat16", 1))
        calls = llm.generate_calls
        pre_reps = doc["window"]["prefill_repetitions"]
        self.assertEqual(len(calls), 2 + 3 * reps + 3 * pre_reps, "warm-up + steady + prefill, each batch once")
        self.assertEqual([c["n_prompts"] for c in calls[2:5]], [3, 3, 1])
        self.assertTrue(all(c["sampling"]["max_tokens"] == 6 for c in calls[:2 + 3 * reps]))
        self.assertEqual({c["sampling"]["max_tokens"] for c in calls[2 + 3 * reps:]}, {1})
        self.assertFalse(any(c["use_tqdm"] for c in calls))
        self.assertEqual(doc["workload"]["engine"], "vllm")
        self.assertEqual(doc["workload"]["generate_kwargs"]["min_tokens"], 6)
        self.assertEqual(doc["environment"]["library_versions"]["vllm"], "0.0.0+fake")
        ph = doc["phases"]
        self.assertAlmostEqual(ph["prefill"]["energy_j"] + ph["decode"]["energy_j"], m["energy_gpu_raw_j"] / reps, places=6)
        self.assertTrue(any("RequestOutput.metrics" in n for n in doc["notes"]))
        self.assertTrue(doc["validation"]["passed"], doc["validation"])

    def test_reasoning_family_counts_outputs_without_the_answer_marker_as_reasoning(self) -> None:
        doc, _ = self.run_fake(config(model={"id": "Qwen/Qwen3-8B"}))
        m = doc["metrics"]
        self.assertEqual(doc["workload"]["reasoning"]["family"], "qwen3")
        self.assertEqual((m["reasoning_output_tokens"], m["answer_output_tokens"]), (m["output_tokens"], 0.0))
        doc, _ = self.run_fake(config())
        self.assertIn("no family", doc["unmeasured"]["reasoning_output_tokens"])

    def test_v1_metrics_and_missing_metrics(self) -> None:
        doc, _ = self.run_fake(config(measurement=NO_SPLIT), metrics="v1")
        self.assertIsNotNone(doc["metrics"]["ttft_mean_s"])
        self.assertIsNotNone(doc["metrics"]["itl_mean_s"])
        doc, _ = self.run_fake(config(measurement=NO_SPLIT), metrics="none")
        m, u = doc["metrics"], doc["unmeasured"]
        for k in ("ttft_mean_s", "ttft_p50_s", "ttft_p99_s", "itl_mean_s"):
            self.assertIsNone(m[k])
            self.assertIn("RequestOutput.metrics is None", u[k])
        self.assertIsNotNone(m["latency_p50_s"])  # the generate() wall time
        self.assertTrue(any("wall time of the batch's generate()" in n for n in doc["notes"]))
        self.assertEqual(common_errors(doc, 3), [])

    def test_variable_length_counts_returned_ids(self) -> None:
        doc, llm = self.run_fake(config(decoder={"preset": "deterministic", "fixed_length": False},
                                        measurement=NO_SPLIT), eos_after=3)
        m = doc["metrics"]
        self.assertEqual(m["output_tokens"], 3 * m["requests"], "EOS after 3 tokens: the returned ids (EOS included)")
        self.assertNotIn("min_tokens", llm.generate_calls[0]["sampling"])

    def test_no_weights_architecture_dir_and_byte_tokenizer(self) -> None:
        doc, llm = self.run_fake(config(model={"id": "meta-llama/Llama-3.2-1B", "no_weights": True,
                                               "architecture": "llama-3.2-1b"},
                                        decoder={"preset": "deterministic", "fixed_length": False},
                                        prompts={"source": "synthetic", "input_len": 8, "count": 4},
                                        measurement=NO_SPLIT))
        kw = llm.kwargs
        self.assertEqual((kw["load_format"], kw["skip_tokenizer_init"]), ("dummy", True))
        self.assertNotIn("tokenizer", kw)
        self.assertEqual(llm.local_config["model_type"], "llama")
        self.assertEqual(llm.local_config["architectures"], ["LlamaForCausalLM"])
        self.assertNotIn("_comment", llm.local_config)
        self.assertFalse(os.path.exists(kw["model"]), "temporary architecture dir removed after the run")
        self.assertEqual(doc["metrics"]["input_tokens"], 4 * 8 * doc["metrics"]["repetitions"])
        self.assertTrue(doc["workload"]["fixed_length"], "no_weights ignores EOS like the pytorch backend")
        self.assertEqual(llm.generate_calls[0]["sampling"]["ignore_eos"], True)
        self.assertNotIn("model", doc["workload"]["engine_kwargs"])

    def test_failed_batch_is_counted(self) -> None:
        doc, _ = self.run_fake(config(measurement=NO_SPLIT), fail_calls={3})
        self.assertEqual(doc["metrics"]["failed_requests"], 3)
        self.assertFalse(doc["validation"]["passed"])

    def test_missing_vllm_is_a_runtime_error_naming_the_image(self) -> None:
        from lem_worker.backends.vllm import run_vllm

        with mock.patch.dict(sys.modules, {"vllm": None}):
            with self.assertRaises(WorkerError) as cm:
                run_vllm(config(), threading.Event())
        self.assertNotIsInstance(cm.exception, ConfigError)
        self.assertIn("use the lem-vllm image", str(cm.exception))


def write_shim(d: str, module: str, source: str) -> None:
    """A directory on PYTHONPATH whose `module` re-exports a fake from tests/fixtures (CLI runs only)."""
    os.makedirs(os.path.join(d, module), exist_ok=True)
    with open(os.path.join(d, module, "__init__.py"), "w", encoding="utf-8") as fh:
        fh.write(source)


def run_cli_with(shim: str, args: list[str], env_extra: dict[str, str]) -> Any:
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (shim, WORKER_ROOT) if p)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "lem_worker", *args], capture_output=True, text=True, env=env, timeout=120)


class VllmCliTest(unittest.TestCase):
    def run_cli(self, with_fake: bool, metrics: str = "v0") -> tuple[Any, Any]:
        cfg = {"run": {"run_id": "vl-1", "experiment_id": "e", "cycle": 1, "attempt": 1},
               "experiment": exp_doc("vllm", measurement={"idle_baseline_s": 0, "min_window_s": 0.1})}
        with tempfile.TemporaryDirectory() as d:
            shim = os.path.join(d, "shim")
            if with_fake:
                write_shim(shim, "vllm", "from tests.fixtures.fake_vllm import *  # noqa: F401,F403  FAKE vllm\n"
                                         "from tests.fixtures.fake_vllm import __version__  # noqa: F401\n")
            path = os.path.join(d, "CONFIG.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh)
            out = os.path.join(d, "out")
            proc = run_cli_with(shim if with_fake else "", ["run", path, "--out", out], {"FAKE_VLLM_METRICS": metrics})
            doc = None
            if os.path.exists(os.path.join(out, "result.json")):
                with open(os.path.join(out, "result.json"), encoding="utf-8") as fh:
                    doc = json.load(fh)
        return proc, doc

    def test_cli_end_to_end_with_fake_vllm(self) -> None:
        proc, doc = self.run_cli(True, metrics="none")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(common_errors(doc, 3), [])
        self.assertEqual((doc["schema_version"], doc["backend"]), (3, "vllm"))
        m, u = doc["metrics"], doc["unmeasured"]
        self.assertGreater(m["output_tokens"], 0)
        self.assertGreater(m["output_tokens_per_s"], 0)
        self.assertIsNone(m["ttft_mean_s"])
        self.assertIn("RequestOutput.metrics is None", u["ttft_mean_s"])
        self.assertIsNone(m["j_per_output_token"])  # no NVML on this host
        self.assertIn("unmeasured", doc)
        self.assertIsNotNone(doc["phases"])

    def test_cli_without_vllm_exits_3_with_the_image_hint(self) -> None:
        try:
            import vllm  # noqa: F401

            self.skipTest("a real vllm is installed in this interpreter")
        except ImportError:
            pass
        proc, doc = self.run_cli(False)
        self.assertEqual(proc.returncode, 3, proc.stderr)  # missing_dependency, found before anything loads
        self.assertIsNone(doc)
        self.assertIn("vllm (needed by backend vllm; use the lem-vllm image", proc.stderr)
        self.assertEqual(len(proc.stderr.strip().splitlines()[-1:]), 1)


if __name__ == "__main__":
    unittest.main()
