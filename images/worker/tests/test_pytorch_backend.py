"""PyTorch backend harness on CPU with real torch and a tiny plain-torch LM (skipped without torch)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import unittest
from typing import Any
from unittest import mock

try:
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False

from lem_worker.config import parse_config
from tests.contract import common_errors

SKIP = "torch is not installed in this interpreter (run with /usr/bin/python3 after apt-get install python3-torch)"


def pytorch_config(**over: Any) -> Any:
    exp: dict[str, Any] = {
        "backend": "pytorch",
        "model": {"id": "tiny"},
        "precision": "fp32",
        "batching": {"strategy": "static", "batch_size": 3},
        "max_input_tokens": 48,
        "max_output_tokens": 6,
        "prompts": {"source": "builtin", "name": "short", "count": 7},
        "warmup": {"mode": "fixed", "iterations": 2},
        "measurement": {"idle_baseline_s": 0.2, "min_window_s": 0.3, "sample_interval_ms": 50},
        "extra": {},
    }
    for k, v in over.items():
        exp[k] = v
    return parse_config({"run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1}, "experiment": exp})


@unittest.skipUnless(HAVE_TORCH, SKIP)
class HarnessTest(unittest.TestCase):
    def run_fake_gpu(self, cfg: Any, loaded: Any) -> dict[str, Any]:
        from lem_worker.backends.pytorch import run_pytorch
        from tests.fixtures.fake_nvml import FakeDevice, FakeNvml, RealTimeClock, Steady, uuid

        clock = RealTimeClock()
        nv = FakeNvml([FakeDevice(uuid(0), Steady(250.0))], clock)
        return run_pytorch(cfg, threading.Event(), loader=lambda exp: loaded, nvml_module=nv, clock=clock,
                           probe_s=0.2, rapl_root="/nonexistent", use_env=False)

    def test_metrics_tokens_energy_and_single_generation_per_batch(self) -> None:
        from tests.fixtures.tiny_lm import make_loaded

        loaded = make_loaded()
        cfg = pytorch_config()
        doc = self.run_fake_gpu(cfg, loaded)
        self.assertEqual(common_errors(doc, 3), [])
        m = doc["metrics"]
        reps = int(m["repetitions"])
        self.assertGreaterEqual(reps, 1)
        self.assertEqual(m["requests"], 7 * reps)
        self.assertEqual(m["output_tokens"], 7 * 6 * reps, "fixed-length decoding: every request yields max_output_tokens")
        tok = loaded.tokenizer
        from lem_worker.prompts import builtin_prompts

        expected_in = sum(min(len(tok(t)["input_ids"]), 48) for t in builtin_prompts("short")[:7])
        self.assertEqual(m["input_tokens"], expected_in * reps)
        self.assertAlmostEqual(m["output_tokens_per_s"], m["output_tokens"] / m["window_s"])
        self.assertAlmostEqual(m["j_per_output_token"], m["energy_gpu_raw_j"] / m["output_tokens"])
        self.assertAlmostEqual(m["j_per_output_token_adjusted"], m["energy_gpu_adjusted_j"] / m["output_tokens"])
        self.assertAlmostEqual(m["energy_gpu_raw_j"], 250.0 * m["window_s"], delta=250.0 * 0.11)
        self.assertLessEqual(m["ttft_mean_s"], m["latency_mean_s"])
        self.assertLessEqual(m["latency_p50_s"], m["latency_p99_s"])
        self.assertGreater(m["itl_mean_s"], 0)
        # generation calls: warm-up (2) + steady reps x 3 batches + prefill reps x 3 batches, each batch once
        calls = loaded.model.generate_calls
        pre_reps = doc["window"]["prefill_repetitions"]
        self.assertEqual(len(calls), 2 + reps * 3 + pre_reps * 3)
        self.assertEqual([c["max_new_tokens"] for c in calls[2:2 + reps * 3]], [6] * reps * 3)
        self.assertEqual({c["max_new_tokens"] for c in calls[2 + reps * 3:]}, {1})
        self.assertTrue(all(c["min_new_tokens"] == c["max_new_tokens"] for c in calls))
        self.assertEqual(doc["warmup"]["iterations"], 2)
        ph = doc["phases"]
        self.assertIsNotNone(ph["prefill"]["energy_j"])
        self.assertAlmostEqual(ph["prefill"]["energy_j"] + ph["decode"]["energy_j"], m["energy_gpu_raw_j"] / reps, places=6)
        self.assertEqual([p["name"] for p in doc["timeline"]["phases"]], ["idle_baseline", "warmup", "steady", "prefill"])
        self.assertIsNotNone(doc["energy"]["baseline"])
        self.assertTrue(doc["validation"]["passed"], doc["validation"])
        # extended efficiency metrics: static batches of 3 left-padded to their longest prompt
        lens = [min(len(tok(t)["input_ids"]), 48) for t in builtin_prompts("short")[:7]]
        padded = sum(max(b) * len(b) for b in (lens[0:3], lens[3:6], lens[6:7]))
        self.assertAlmostEqual(m["padding_overhead"], padded / sum(lens) - 1)
        self.assertAlmostEqual(m["batch_fill"], 7 / 9)
        weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
        self.assertAlmostEqual(m["gpu_memory_model_gib"], weights / 1024 ** 3)
        self.assertEqual((m["gpu_memory_peak_gib"], m["gpu_util_mean_pct"]), (4.0, 87.0))  # the FAKE NVML device
        self.assertNotIn("flops_per_output_token_profiler", m)  # the profiler is off unless pytorch.profiler

    def test_profiler_pass_runs_after_the_windows_and_counts_flops(self) -> None:
        from tests.fixtures.tiny_lm import make_loaded

        loaded = make_loaded()
        doc = self.run_fake_gpu(pytorch_config(pytorch={"profiler": True}), loaded)
        m = doc["metrics"]
        reps, pre_reps = int(m["repetitions"]), doc["window"]["prefill_repetitions"]
        calls = loaded.model.generate_calls
        self.assertEqual(len(calls), 2 + reps * 3 + pre_reps * 3 + 1, "one extra batch, after the prefill window")
        self.assertEqual(calls[-1]["max_new_tokens"], 6)
        self.assertEqual([p["name"] for p in doc["timeline"]["phases"]], ["idle_baseline", "warmup", "steady", "prefill"])
        self.assertGreater(m["flops_per_output_token_profiler"], 0)
        self.assertTrue(any("torch.profiler" in n for n in doc["notes"]))

    def test_variable_length_counts_tokens_up_to_eos(self) -> None:
        from lem_worker.backends.pytorch import count_new_tokens

        self.assertEqual(count_new_tokens([5, 6, 2, 0, 0], {2}, ignore_eos=False), 3)
        self.assertEqual(count_new_tokens([5, 6, 7], {2}, ignore_eos=False), 3)
        self.assertEqual(count_new_tokens([5, 2, 7], {2}, ignore_eos=True), 3)

    def test_timing_streamer_skips_prompt(self) -> None:
        from lem_worker.backends.pytorch import TimingStreamer

        s = TimingStreamer()
        s.put("prompt")
        s.put(1)
        s.put(2)
        s.end()
        self.assertEqual(len(s.times), 2)
        self.assertLessEqual(s.times[0], s.times[1])

    def test_chat_template_and_synthetic_prompts(self) -> None:
        from lem_worker.backends.pytorch import tokenize
        from tests.fixtures.tiny_lm import make_loaded

        notes: list[str] = []
        loaded = make_loaded(chat=True)
        reqs = tokenize(loaded, pytorch_config().experiment, notes)
        self.assertTrue(any("chat template" in n for n in notes))
        text = loaded.tokenizer.decode(reqs[0].input_ids)
        self.assertTrue(text.startswith("<user>"))
        self.assertNotEqual(reqs[0].input_ids[0], loaded.tokenizer.bos_token_id)
        cfg = pytorch_config(prompts={"source": "synthetic", "input_len": 12, "count": 3})
        reqs = tokenize(make_loaded(), cfg.experiment, [])
        self.assertEqual([len(r.input_ids) for r in reqs], [12, 12, 12])

    def test_sampling_presets_pass_sampling_params_only_when_sampling(self) -> None:
        from lem_worker.backends.pytorch import generate_kwargs
        from tests.fixtures.tiny_lm import make_loaded

        loaded = make_loaded()
        greedy = generate_kwargs(pytorch_config().experiment, loaded, 5)
        self.assertNotIn("temperature", greedy)
        self.assertEqual((greedy["min_new_tokens"], greedy["do_sample"]), (5, False))
        samp = generate_kwargs(pytorch_config(decoder={"preset": "factual", "fixed_length": False}).experiment, loaded, 5)
        self.assertEqual((samp["temperature"], samp["top_p"], samp["top_k"]), (0.3, 0.9, 20))
        self.assertNotIn("min_new_tokens", samp)

    def test_failed_batches_are_counted_and_flagged(self) -> None:
        from tests.fixtures.tiny_lm import make_loaded

        loaded = make_loaded()
        real = loaded.model.generate
        n = {"calls": 0}

        def flaky(*a: Any, **k: Any) -> Any:
            n["calls"] += 1
            if n["calls"] == 4:  # first steady batch
                raise RuntimeError("CUDA out of memory (simulated)")
            return real(*a, **k)

        loaded.model.generate = flaky
        doc = self.run_fake_gpu(pytorch_config(warmup={"mode": "fixed", "iterations": 3}), loaded)
        self.assertEqual(doc["metrics"]["failed_requests"], 3)
        self.assertFalse(doc["validation"]["passed"])
        self.assertIn("failed_requests", [f["gate"] for f in doc["validation"]["flags"]])


@unittest.skipUnless(HAVE_TORCH, SKIP)
class LoaderPlumbingTest(unittest.TestCase):
    """transformers-specific loading against a stand-in module: argument plumbing only."""

    def load(self, tokenizer_error: bool = False, **over: Any) -> tuple[Any, list[Any]]:
        from lem_worker.backends.loader import load_transformers
        from tests.fixtures.fake_transformers import make_module

        mod, calls = make_module(tokenizer_error)
        with mock.patch.dict(sys.modules, {"transformers": mod}):
            loaded = load_transformers(pytorch_config(**over).experiment)
        return loaded, calls

    def test_dtype_keyword_follows_the_transformers_version(self) -> None:
        from lem_worker.backends.loader import dtype_kwarg
        self.assertEqual([dtype_kwarg(v) for v in ("4.47.1", "4.56.0", "5.23.0", None)],
                         ["torch_dtype", "dtype", "dtype", "dtype"])

    def test_typed_generate_fields_reach_generate_and_lora_needs_peft(self) -> None:
        loaded, _ = self.load(pytorch={"num_beams": 2, "use_cache": False, "prompt_lookup_num_tokens": 3})
        self.assertEqual(loaded.generate_extra, {"num_beams": 2, "use_cache": False, "prompt_lookup_num_tokens": 3})
        from lem_worker.errors import WorkerError
        with mock.patch.dict(sys.modules, {"peft": None}):
            with self.assertRaisesRegex(WorkerError, "peft"):
                self.load(pytorch={"lora": [{"id": "org/adapter"}]})

    def test_from_pretrained_arguments(self) -> None:
        loaded, calls = self.load(model={"id": "org/model", "revision": "abc123", "trust_remote_code": True},
                                  precision="bf16", pytorch={"attn_implementation": "sdpa", "static_kv_cache": True})
        name, args, kw = calls[0]
        self.assertEqual((name, args), ("AutoModelForCausalLM.from_pretrained", ("org/model",)))
        import torch

        self.assertEqual(kw["dtype"], torch.bfloat16)  # transformers >= 4.56: dtype=, not the removed torch_dtype=
        self.assertNotIn("torch_dtype", kw)
        self.assertEqual((kw["revision"], kw["trust_remote_code"], kw["attn_implementation"]), ("abc123", True, "sdpa"))
        self.assertNotIn("quantization_config", kw)
        tname, targs, tkw = calls[1]
        self.assertEqual((tname, targs, tkw["revision"]), ("AutoTokenizer.from_pretrained", ("org/model",), "abc123"))
        self.assertEqual(loaded.generate_extra, {"cache_implementation": "static"})
        self.assertEqual(loaded.tokenizer.padding_side, "left")

    def test_device_map_and_max_memory_passed(self) -> None:
        _, calls = self.load(pytorch={"device_map": {"": "cpu"}, "max_memory": {"cpu": "8GiB"}})
        kw = calls[0][2]
        self.assertEqual((kw["device_map"], kw["max_memory"]), ({"": "cpu"}, {"cpu": "8GiB"}))

    def test_no_weights_uses_shipped_architecture_and_ignores_eos(self) -> None:
        for arch, mtype in (("llama-3.2-1b", "llama"), ("qwen2.5-0.5b", "qwen2"), ("gpt2", "gpt2")):
            loaded, calls = self.load(tokenizer_error=True, model={"id": "meta-llama/Llama-3.2-1B", "no_weights": True, "architecture": arch})
            name, args, kw = calls[0]
            self.assertEqual((name, args[0]), ("AutoConfig.for_model", mtype))
            self.assertNotIn("architectures", kw)
            self.assertNotIn("_comment", kw)
            self.assertEqual(calls[1][0], "AutoModelForCausalLM.from_config")
            self.assertTrue(loaded.ignore_eos)
            self.assertEqual(type(loaded.tokenizer).__name__, "ByteTokenizer")
        self.assertEqual(kw.get("num_hidden_layers", kw.get("n_layer")), 12)

    def test_unknown_architecture_is_config_error(self) -> None:
        from lem_worker.errors import ConfigError

        with self.assertRaises(ConfigError):
            self.load(model={"id": "x", "no_weights": True, "architecture": "nope"})

    def test_bitsandbytes_missing_is_clear_error(self) -> None:
        from lem_worker.errors import WorkerError

        with mock.patch("lem_worker.backends.loader._has_module", return_value=False):
            with self.assertRaises(WorkerError) as cm:
                self.load(quantization={"method": "bnb_4bit"})
        self.assertIn("bitsandbytes", str(cm.exception))

    def test_bitsandbytes_config_when_installed(self) -> None:
        import torch

        with mock.patch("lem_worker.backends.loader._has_module", return_value=True), \
                mock.patch.object(torch.cuda, "is_available", return_value=True), \
                mock.patch.object(torch.nn.Module, "to", lambda self, *a, **k: self):
            _, calls = self.load(quantization={"method": "bnb_4bit"}, precision="fp16")
        bnb = [c for c in calls if c[0] == "BitsAndBytesConfig"][0][2]
        self.assertEqual((bnb["load_in_4bit"], bnb["bnb_4bit_compute_dtype"], bnb["bnb_4bit_quant_type"]),
                         (True, torch.float16, "nf4"))
        fp = [c for c in calls if c[0] == "AutoModelForCausalLM.from_pretrained"][0][2]
        self.assertIn("quantization_config", fp)
        self.assertEqual(fp["device_map"], "cuda")


@unittest.skipUnless(HAVE_TORCH, SKIP)
class PytorchCliTest(unittest.TestCase):
    def test_cli_run_with_fixture_loader(self) -> None:
        from tests.test_cli_calibration import run_cli

        cfg = {
            "run": {"run_id": "pt-1", "experiment_id": "e", "cycle": 1, "attempt": 1},
            "experiment": {"backend": "pytorch", "model": {"id": "tiny"}, "precision": "fp32",
                           "batching": {"strategy": "sorted", "batch_size": 4}, "max_input_tokens": 32,
                           "max_output_tokens": 4, "prompts": {"source": "builtin", "count": 6},
                           "warmup": {"mode": "cv", "cv_threshold": 0.5, "window": 2, "max_iterations": 5},
                           "measurement": {"idle_baseline_s": 0, "min_window_s": 0.2, "prefill_split": False},
                           "pytorch": {"loader": "tests.fixtures.tiny_lm:load"}},
        }
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "CONFIG.json")
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh)
            proc = run_cli(["run", path, "--out", os.path.join(d, "out")], timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            with open(os.path.join(d, "out", "result.json"), encoding="utf-8") as fh:
                doc = json.load(fh)
        self.assertEqual(common_errors(doc, 3), [])
        self.assertEqual(doc["backend"], "pytorch")
        self.assertIsNone(doc["phases"])
        self.assertIn("prefill_split", doc["unmeasured"]["energy_prefill_j"])
        self.assertIsNone(doc["metrics"]["j_per_output_token"])
        self.assertIn("NVML", doc["unmeasured"]["j_per_output_token"])


if __name__ == "__main__":
    unittest.main()
