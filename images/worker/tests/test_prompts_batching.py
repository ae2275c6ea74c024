"""Prompt sources and batch formation (no torch needed)."""
from __future__ import annotations

import json
import os
import tempfile
import unittest

from lem_worker.batching import Request, make_batches
from lem_worker.config import BatchingCfg, PromptsCfg
from lem_worker.errors import ConfigError, WorkerError
from lem_worker.prompts import builtin_prompts, load_prompts


class PromptsTest(unittest.TestCase):
    def test_builtin_set_has_200_varied_prompts(self) -> None:
        texts = builtin_prompts("mixed")
        self.assertGreaterEqual(len(texts), 200)
        self.assertEqual(len(set(texts)), len(texts))
        lengths = sorted(len(t) for t in texts)
        self.assertLess(lengths[0], 120)
        self.assertGreater(lengths[-1], 800)
        for kind in ("short", "medium", "long"):
            self.assertGreater(len(builtin_prompts(kind)), 50)

    def test_builtin_count_and_cycling(self) -> None:
        p = load_prompts(PromptsCfg(source="builtin", name="short", count=5))
        assert p.texts is not None
        self.assertEqual(len(p.texts), 5)
        p2 = load_prompts(PromptsCfg(source="builtin", name="short", count=500))
        assert p2.texts is not None
        self.assertEqual(len(p2.texts), 500)
        self.assertTrue(any("cycled" in n for n in p2.notes))
        with self.assertRaises(ConfigError):
            load_prompts(PromptsCfg(source="builtin", name="nope"))

    def test_jsonl_and_csv_files(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            j = os.path.join(d, "p.jsonl")
            with open(j, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"prompt": "a"}) + "\n\n" + json.dumps({"prompt": "b"}) + "\n")
            p = load_prompts(PromptsCfg(source="file", path=j, count=None))
            self.assertEqual(p.texts, ["a", "b"])
            c = os.path.join(d, "p.csv")
            with open(c, "w", encoding="utf-8") as fh:
                fh.write("id,question\n1,\"x, y\"\n2,z\n")
            p = load_prompts(PromptsCfg(source="file", path=c, column="question", count=None))
            self.assertEqual(p.texts, ["x, y", "z"])
            with self.assertRaises(ConfigError):
                load_prompts(PromptsCfg(source="file", path=c, column="missing", count=None))
            with self.assertRaises(ConfigError):
                load_prompts(PromptsCfg(source="file", path=os.path.join(d, "none.jsonl"), count=None))

    def test_synthetic_shapes_avoid_special_ids(self) -> None:
        p = load_prompts(PromptsCfg(source="synthetic", input_len=32, count=4), vocab_size=50, special_ids=(10, 11))
        assert p.token_ids is not None
        self.assertEqual([len(r) for r in p.token_ids], [32] * 4)
        self.assertTrue(all(10 < t < 50 or t > 11 for r in p.token_ids for t in r))
        self.assertFalse(any(t in (10, 11) for r in p.token_ids for t in r))
        again = load_prompts(PromptsCfg(source="synthetic", input_len=32, count=4), vocab_size=50, special_ids=(10, 11))
        self.assertEqual(p.token_ids, again.token_ids)

    def test_huggingface_needs_datasets(self) -> None:
        try:
            import datasets  # noqa: F401
            self.skipTest("datasets is installed")
        except ImportError:
            pass
        with self.assertRaises(WorkerError) as cm:
            load_prompts(PromptsCfg(source="huggingface", dataset="x", column="text"))
        self.assertIn("datasets", str(cm.exception))


class BatchingTest(unittest.TestCase):
    reqs = [Request(i, [1] * n) for i, n in enumerate([5, 1, 9, 3, 7])]

    def test_static_keeps_order(self) -> None:
        b = make_batches(self.reqs, BatchingCfg("static", 2), 4)
        self.assertEqual([[r.index for r in x] for x in b], [[0, 1], [2, 3], [4]])

    def test_sorted_by_length(self) -> None:
        b = make_batches(self.reqs, BatchingCfg("sorted", 2), 4)
        self.assertEqual([[r.index for r in x] for x in b], [[1, 3], [0, 4], [2]])

    def test_dynamic_token_budget(self) -> None:
        # sorted lengths 1,3,5,7,9 with 4 new tokens: (n x (longest + 4)) <= 24
        b = make_batches(self.reqs, BatchingCfg("dynamic", 1, 24), 4)
        self.assertEqual([[r.index for r in x] for x in b], [[1, 3], [0, 4], [2]])
        for batch in b:
            self.assertLessEqual(len(batch) * (max(len(r.input_ids) for r in batch) + 4), 24)
        capped = make_batches(self.reqs, BatchingCfg("dynamic", 2, 1000), 4)
        self.assertEqual([len(x) for x in capped], [2, 2, 1])


if __name__ == "__main__":
    unittest.main()
