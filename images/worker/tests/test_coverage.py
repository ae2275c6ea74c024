"""The parameter-coverage audit (lem_worker/coverage.py) against FAKE engine argument classes
(tests/fixtures/fake_engine_args.py): every introspected parameter is typed, set by lem or deliberately left
to extra.engine_args; a new engine parameter fails; energy-relevant coverage meets the targets."""
from __future__ import annotations

import io
import json
import sys
import types
import unittest
from contextlib import redirect_stdout
from typing import Any
from unittest import mock

from lem_worker.coverage import audit, load_catalogue
from tests.fixtures import fake_engine_args as fea

TARGETS = {"pytorch": 0.95, "tensorrt": 0.95, "vllm": 0.90}


def fake_engine_modules(extra: dict[str, list[str]]) -> dict[str, Any]:
    """FAKE vllm / tensorrt_llm / transformers modules carrying only the argument classes."""
    vllm = types.ModuleType("vllm")
    vllm.__version__ = "0.0.0+fake"  # type: ignore[attr-defined]
    vllm.EngineArgs = fea.make_dataclass("EngineArgs", fea.VLLM_ENGINE, extra.get("vllm", []))  # type: ignore[attr-defined]
    vllm.SamplingParams = fea.make_struct("SamplingParams", fea.VLLM_SAMPLING)  # type: ignore[attr-defined]
    trt = types.ModuleType("tensorrt_llm")
    trt.__version__ = "0.0.0+fake"  # type: ignore[attr-defined]
    trt.SamplingParams = fea.make_dataclass("SamplingParams", fea.TRT_SAMPLING)  # type: ignore[attr-defined]
    llmapi = types.ModuleType("tensorrt_llm.llmapi")
    llmapi.LlmArgs = fea.make_pydantic("LlmArgs", fea.TRT_LLM_ARGS, extra.get("tensorrt", []))  # type: ignore[attr-defined]
    llmapi.KvCacheConfig = fea.make_pydantic("KvCacheConfig", fea.TRT_KV_CACHE)  # type: ignore[attr-defined]
    trt.llmapi = llmapi  # type: ignore[attr-defined]
    tf = types.ModuleType("transformers")
    tf.__version__ = "0.0.0+fake"  # type: ignore[attr-defined]
    tf.GenerationConfig = fea.make_generation_config(extra.get("pytorch", []))  # type: ignore[attr-defined]
    return {"vllm": vllm, "vllm.engine.arg_utils": None, "tensorrt_llm": trt, "tensorrt_llm.llmapi": llmapi,
            "tensorrt_llm.llmapi.llm_args": None, "transformers": tf}


class TestCoverageAuditWithFakeEngines(unittest.TestCase):
    def test_fake_engines_every_parameter_classified_and_coverage_meets_targets(self) -> None:
        with mock.patch.dict(sys.modules, fake_engine_modules({})):
            for backend, target in TARGETS.items():
                with self.subTest(backend=backend):
                    r = audit(backend)
                    self.assertTrue(all(c["found"] for c in r["classes"]), r["classes"])
                    self.assertEqual(r["unclassified"], [])
                    self.assertGreaterEqual(r["energy_relevant"]["coverage"], target)
                    self.assertEqual(r["energy_relevant"]["missing_from_engine"], [])
                    self.assertEqual(r["engine_version"], "0.0.0+fake")

    def test_fake_engine_with_a_new_parameter_fails_the_audit(self) -> None:
        new = {"vllm": ["enable_turbo_mode"], "tensorrt": ["fancy_scheduler"], "pytorch": ["hyper_cache"]}
        with mock.patch.dict(sys.modules, fake_engine_modules(new)):
            for backend, names in new.items():
                self.assertEqual(audit(backend)["unclassified"], names)
            out = io.StringIO()
            from lem_worker.cli import main
            with redirect_stdout(out):
                rc = main(["coverage", "vllm"])
        self.assertEqual(rc, 1)
        self.assertEqual(json.loads(out.getvalue())["unclassified"], ["enable_turbo_mode"])

    def test_catalogue_lists_are_disjoint_and_energy_parameters_classified(self) -> None:
        for backend, cat in load_catalogue().items():
            typed, lem, left = set(cat["typed"]), set(cat["set_by_lem"]), set(cat["left"])
            self.assertEqual(typed & lem | typed & left | lem & left, set(), backend)
            self.assertEqual([e for e in cat["energy_relevant"] if e not in typed | lem | left], [], backend)

    def test_missing_engine_reports_classes_not_found(self) -> None:
        with mock.patch.dict(sys.modules, {"vllm": None, "vllm.engine.arg_utils": None}):
            r = audit("vllm")
        self.assertFalse(any(c["found"] for c in r["classes"]))


if __name__ == "__main__":
    unittest.main()
