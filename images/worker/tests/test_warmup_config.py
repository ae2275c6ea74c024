"""Warm-up (fixed / CV convergence) and config parsing."""
from __future__ import annotations

import sys
import threading
import types
import unittest
from typing import Any
from unittest import mock

from lem_worker.config import PromptsCfg, WarmupCfg, parse_config
from lem_worker.errors import ConfigError
from lem_worker.prompts import load_prompts
from lem_worker.warmup import coefficient_of_variation, run_warmup


def fake_timer(durations: list[float]) -> Any:
    """perf_counter stand-in: each step() takes the next duration."""
    state = {"t": 0.0, "i": 0, "started": False}

    def timer() -> float:
        if state["started"]:
            state["t"] += durations[min(state["i"], len(durations) - 1)]
            state["i"] += 1
        state["started"] = not state["started"]
        return state["t"]

    return timer


class WarmupTest(unittest.TestCase):
    def test_fixed(self) -> None:
        calls = []
        rec = run_warmup(WarmupCfg(mode="fixed", iterations=4), lambda: calls.append(1), threading.Event(),
                         timer=fake_timer([1.0, 1.0, 1.0, 1.0]))
        self.assertEqual((len(calls), rec["iterations"], rec["converged"]), (4, 4, None))

    def test_cv_converges(self) -> None:
        durs = [5.0, 2.0, 1.2, 1.0, 1.01, 0.99, 1.0, 1.0]
        rec = run_warmup(WarmupCfg(mode="cv", cv_threshold=0.05, window=3, max_iterations=20), lambda: None,
                         threading.Event(), timer=fake_timer(durs))
        self.assertTrue(rec["converged"])
        self.assertEqual(rec["iterations"], 6)  # 1.0, 1.01, 0.99 is the first window under 5 %
        self.assertLessEqual(rec["cv"], 0.05)

    def test_cv_not_converged_hits_cap(self) -> None:
        durs = [1.0, 2.0] * 10
        rec = run_warmup(WarmupCfg(mode="cv", cv_threshold=0.01, window=3, max_iterations=7), lambda: None,
                         threading.Event(), timer=fake_timer(durs))
        self.assertEqual((rec["iterations"], rec["converged"]), (7, False))

    def test_cv_helper(self) -> None:
        self.assertIsNone(coefficient_of_variation([1.0]))
        self.assertAlmostEqual(coefficient_of_variation([1.0, 1.0, 1.0]) or 0, 0.0)


class ConfigTest(unittest.TestCase):
    def base(self, **exp: Any) -> dict[str, Any]:
        e = {"backend": "pytorch", "model": {"id": "m"}}
        e.update(exp)
        return {"run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1}, "experiment": e}

    def test_defaults_match_the_typescript_schema(self) -> None:
        cfg = parse_config(self.base())
        x = cfg.experiment
        self.assertEqual((x.precision, x.max_input_tokens, x.max_output_tokens), ("bf16", 512, 128))
        self.assertEqual((x.measurement.idle_baseline_s, x.measurement.min_window_s, x.measurement.sample_interval_ms,
                          x.measurement.cross_check_threshold), (10.0, 30.0, 100, 0.05))
        self.assertEqual((x.warmup.mode, x.warmup.iterations, x.warmup.cv_threshold, x.warmup.window,
                          x.warmup.max_iterations), ("fixed", 3, 0.05, 3, 30))
        self.assertEqual((x.prompts.source, x.prompts.name, x.prompts.count), ("builtin", "mixed", 100))
        self.assertEqual((x.decoder.preset, x.decoder.do_sample, x.decoder.fixed_length), ("deterministic", False, True))

    def test_preset_with_overrides(self) -> None:
        d = parse_config(self.base(decoder={"preset": "creative", "top_k": 7})).experiment.decoder
        self.assertEqual((d.do_sample, d.temperature, d.top_p, d.top_k), (True, 1.3, 0.98, 7))

    def test_rejections_name_the_field(self) -> None:
        cases = [
            (self.base(precision="fp8"), "precision"),
            (self.base(batching={"strategy": "dynamic"}), "max_tokens_per_batch"),
            (self.base(decoder={"preset": "deterministic", "do_sample": True}), "decoder"),
            (self.base(prompts={"source": "synthetic"}), "input_len"),
            (self.base(measurement={"sample_interval_ms": 5}), "sample_interval_ms"),
            (self.base(measurement={"gpu_ids": [-1]}), "gpu_ids"),
            ({"run": {"run_id": "r"}, "experiment": {}}, "experiment_id"),
            ([], "top level"),
        ]
        for doc, needle in cases:
            with self.assertRaises(ConfigError, msg=needle) as cm:
                parse_config(doc)
            self.assertIn(needle, str(cm.exception))


class HuggingFaceDatasetsTest(unittest.TestCase):
    def test_stand_in_datasets_module(self) -> None:
        class DS:
            column_names = ["text", "label"]

            def __init__(self, rows: list[str]) -> None:
                self.rows = rows

            def __len__(self) -> int:
                return len(self.rows)

            def select(self, idx: Any) -> dict[str, list[str]]:
                return {"text": [self.rows[i] for i in idx]}

        calls: list[Any] = []
        mod = types.ModuleType("datasets")

        def load_dataset(name: str, subset: Any, split: str) -> DS:
            calls.append((name, subset, split))
            return DS([f"row {i}" for i in range(10)])

        mod.load_dataset = load_dataset  # type: ignore[attr-defined]
        with mock.patch.dict(sys.modules, {"datasets": mod}):
            p = load_prompts(PromptsCfg(source="huggingface", dataset="org/set", subset="en", split="test",
                                        column="text", count=3))
        self.assertEqual(calls, [("org/set", "en", "test")])
        self.assertEqual(p.texts, ["row 0", "row 1", "row 2"])


if __name__ == "__main__":
    unittest.main()
