"""The analytical FLOPs estimate and the extended efficiency metrics of efficiency.py (meter and samples are
FAKES: plain objects with the attributes the module reads)."""
from __future__ import annotations

import json
import os
import unittest
from types import SimpleNamespace
from typing import Any

from lem_worker.efficiency import efficiency_metrics, flops_per_token_estimate
from lem_worker.report import MetricSet

ARCH = os.path.join(os.path.dirname(__file__), "..", "lem_worker", "data", "architectures")


def arch(name: str) -> dict[str, Any]:
    with open(os.path.join(ARCH, f"{name}.json"), encoding="utf-8") as fh:
        out: dict[str, Any] = json.load(fh)
    return out


class TestFlopsEstimate(unittest.TestCase):
    def test_gpt2_small_from_its_config_matches_the_hand_count(self) -> None:
        # non-embedding: 12 layers x (QKV+O 4 d^2 + MLP 2 x d x 4d) = 84,934,656 (GPT-2 small's known ~85M)
        est, why = flops_per_token_estimate(arch("gpt2"), None, 100)
        self.assertIsNone(why)
        self.assertEqual(est, 2 * 84_934_656 + 2 * 50257 * 768 + 4 * 12 * 100 * 768)

    def test_a_known_parameter_count_replaces_the_config_count_and_context_adds_attention(self) -> None:
        cfg = arch("llama-3.2-1b")
        a, _ = flops_per_token_estimate(cfg, 1_235_814_400, 0)
        b, _ = flops_per_token_estimate(cfg, 1_235_814_400, 1000)
        assert a is not None and b is not None
        self.assertEqual(a, 2 * (1_235_814_400 - 128256 * 2048) + 2 * 128256 * 2048)
        self.assertEqual(b - a, 4 * 16 * 1000 * 2048)

    def test_moe_and_incomplete_configs_are_null_with_a_reason(self) -> None:
        self.assertIn("mixture-of-experts", flops_per_token_estimate({**arch("gpt2"), "num_local_experts": 8}, None, 1)[1] or "")
        self.assertIn("lacks", flops_per_token_estimate({"vocab_size": 10}, None, 1)[1] or "")
        self.assertIn("no architecture", flops_per_token_estimate(None, None, 1)[1] or "")


class TestEfficiencyMetrics(unittest.TestCase):
    def test_fake_meter_window_without_gpu_gives_reasons_not_numbers(self) -> None:
        ms = MetricSet()
        win = SimpleNamespace(t0=0.0, t1=2.0, duration_s=2.0)
        efficiency_metrics(ms, SimpleNamespace(sampler=None), win, reps=1, requests=4, input_tokens=40,
                           output_tokens=80, batch_sizes=[4], batch_size=4, padded_input_per_pass=48, model_bytes=None,
                           stats_begin={}, stats_end={}, arch=arch("gpt2"), n_params=None, max_output_tokens=20)
        self.assertIsNone(ms.get("gpu_memory_peak_gib"))
        self.assertIn("no GPU samples", ms.unmeasured["output_tokens_per_s_per_gib"])
        self.assertAlmostEqual(ms.get("padding_overhead") or 0, 0.2)
        self.assertEqual(ms.get("batch_fill"), 1.0)
        self.assertIsNotNone(ms.get("flops_per_output_token_estimate"))

    def test_fake_samples_sum_peak_memory_over_gpus_and_average_utilisation_in_window_only(self) -> None:
        def s(t: float, mib: float, util: float) -> Any:
            return SimpleNamespace(t=t, mem_used_mib=mib, sm_util_pct=util)
        samples = {"a": [s(0.5, 1024, 50), s(1.0, 2048, 100), s(9.0, 9999, 0)], "b": [s(1.0, 1024, 90)]}
        meter = SimpleNamespace(sampler=SimpleNamespace(snapshot=lambda: samples))
        ms = MetricSet()
        efficiency_metrics(ms, meter, SimpleNamespace(t0=0.0, t1=2.0, duration_s=2.0), reps=1, requests=1,
                           input_tokens=1, output_tokens=10, batch_sizes=[1], batch_size=2, padded_input_per_pass=None,
                           model_bytes=2 * 1024 ** 3, stats_begin={"prefix_cache_queries": 10, "prefix_cache_hits": 2},
                           stats_end={"prefix_cache_queries": 30, "prefix_cache_hits": 12}, arch=None, n_params=None,
                           max_output_tokens=10)
        self.assertEqual(ms.get("gpu_memory_peak_gib"), 3.0)
        self.assertEqual(ms.get("gpu_util_mean_pct"), 80.0)
        self.assertEqual(ms.get("gpu_memory_model_gib"), 2.0)
        self.assertEqual(ms.get("prefix_cache_hit_rate"), 0.5)
        self.assertEqual(ms.get("output_tokens_per_s_per_gib"), 5.0 / 3.0)


if __name__ == "__main__":
    unittest.main()
