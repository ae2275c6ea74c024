"""The reasoning-format registry (data/reasoning.yaml) and how its plans reach the prompt and the counts."""
from __future__ import annotations

import os
import tempfile
import unittest
from typing import Any

import yaml

from lem_worker.config import Experiment, MeasurementCfg, ModelCfg
from lem_worker.errors import ConfigError
from lem_worker.reasoning import (REGISTRY_PATH, ReasoningCfg, load_registry, parse_reasoning, plan, split_counts,
                                  split_text)

HERE = os.path.dirname(__file__)

# One real model id per shipped family, and what asking it to reason (on) / not (off) must produce.
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "gpt-oss": ("openai/gpt-oss-20b", {"template_kwargs": {"reasoning_effort": "medium"},
                                       "request_fields": {"reasoning_effort": "medium"}}, {"error": "always reasons"}),
    "smollm3": ("HuggingFaceTB/SmolLM3-3B", {"system_prompt": "/think"}, {"system_prompt": "/no_think"}),
    "deepseek-r1": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", {"generation_prefix": "<think>\n"},
                    {"generation_prefix": "<think>\n\n</think>\n\n"}),
    "qwen3": ("Qwen/Qwen3-8B", {"template_kwargs": {"enable_thinking": True}},
              {"template_kwargs": {"enable_thinking": False},
               "request_fields": {"chat_template_kwargs": {"enable_thinking": False}}}),
    "hunyuan": ("tencent/Hunyuan-A13B-Instruct", {"template_kwargs": {"enable_thinking": True}},
                {"template_kwargs": {"enable_thinking": False}}),
    "nemotron-v2": ("nvidia/NVIDIA-Nemotron-Nano-9B-v2", {"system_prompt": "/think"}, {"system_prompt": "/no_think"}),
    "nemotron": ("nvidia/Llama-3_1-Nemotron-Nano-8B-v1", {"system_prompt": "detailed thinking on"},
                 {"system_prompt": "detailed thinking off"}),
    "exaone": ("LGAI-EXAONE/EXAONE-4.0-32B", {"template_kwargs": {"enable_thinking": True}},
               {"template_kwargs": {"enable_thinking": False}}),
    "exaone-deep": ("LGAI-EXAONE/EXAONE-Deep-7.8B", {"enabled": True}, {"error": "always reasons"}),
    "phi-reasoning": ("microsoft/Phi-4-reasoning", {"enabled": True}, {"error": "always reasons"}),
    "phi": ("microsoft/phi-4", {"error": "no reasoning mode"}, {"enabled": False}),
    "gemma": ("google/gemma-3-1b-it", {"error": "no reasoning mode"}, {"enabled": False}),
}


class TestRegistrySelection(unittest.TestCase):
    reg = load_registry()

    def test_every_shipped_family_has_a_case_and_is_selected_by_its_model_id(self) -> None:
        self.assertEqual(sorted(f.name for f in self.reg.families), sorted(CASES))
        for fam, (mid, _, _) in CASES.items():
            sel = self.reg.select(mid)
            self.assertIsNotNone(sel, mid)
            assert sel is not None
            self.assertEqual(sel.name, fam, mid)

    def test_each_family_is_asked_to_reason_and_not_as_the_registry_says(self) -> None:
        for fam, (mid, on, off) in CASES.items():
            for enabled, want in ((True, on), (False, off)):
                with self.subTest(family=fam, enabled=enabled):
                    if "error" in want:
                        with self.assertRaisesRegex(ConfigError, want["error"]):
                            plan(mid, ReasoningCfg(enabled=enabled), self.reg)
                        continue
                    got = plan(mid, ReasoningCfg(enabled=enabled), self.reg)
                    self.assertEqual(got.family, fam)
                    for k, v in want.items():
                        self.assertEqual(getattr(got, k) if k != "enabled" else got.enabled, v, k)

    def test_an_exact_id_override_beats_the_patterns(self) -> None:
        mid = "nvidia/Llama-3_3-Nemotron-Super-49B-v1_5"
        self.assertEqual(self.reg.select("nvidia/Llama-3_3-Nemotron-Super-49B-v1").name, "nemotron")  # type: ignore[union-attr]
        self.assertEqual(plan(mid, ReasoningCfg(enabled=False), self.reg).system_prompt, "/no_think")

    def test_effort_levels_are_checked_and_reach_template_and_request(self) -> None:
        p = plan("openai/gpt-oss-120b", ReasoningCfg(effort="high"), self.reg)
        self.assertEqual((p.template_kwargs, p.request_fields), ({"reasoning_effort": "high"}, {"reasoning_effort": "high"}))
        with self.assertRaisesRegex(ConfigError, "takes no effort level"):
            plan("Qwen/Qwen3-8B", ReasoningCfg(effort="low"), self.reg)

    def test_unknown_model_with_a_reasoning_request_is_a_config_error_and_without_one_a_no_op(self) -> None:
        with self.assertRaisesRegex(ConfigError, "matches no family"):
            plan("gpt2", ReasoningCfg(enabled=True), self.reg)
        p = plan("gpt2", None, self.reg)
        self.assertEqual((p.family, p.template_kwargs, p.system_prompt), (None, {}, None))

    def test_no_section_keeps_the_prompt_but_records_the_family_and_marker(self) -> None:
        p = plan("Qwen/Qwen3-0.6B", None, self.reg)
        self.assertEqual((p.family, p.template_kwargs, p.answer_marker), ("qwen3", {}, "</think>"))

    def test_budget_is_recorded_with_a_note_not_enforced(self) -> None:
        p = plan("Qwen/Qwen3-8B", ReasoningCfg(enabled=True, budget_tokens=64), self.reg)
        self.assertEqual(p.record()["budget_tokens"], 64)
        self.assertIn("not enforced", p.notes[0])

    def test_section_parsing_names_the_field(self) -> None:
        self.assertEqual(parse_reasoning({"enabled": True, "effort": "low"}), ReasoningCfg(True, "low", None))
        for bad, field in (({"enabled": "yes"}, "enabled"), ({"effort": "max"}, "effort"),
                           ({"budget_tokens": 0}, "budget_tokens"), ({"budget": 1}, "unknown")):
            with self.assertRaisesRegex(ConfigError, field):
                parse_reasoning(bad)


class TestNewFamilyIsAYamlEdit(unittest.TestCase):
    def test_a_fixture_registry_with_an_added_family_selects_and_applies_it(self) -> None:
        with open(REGISTRY_PATH, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        with open(os.path.join(HERE, "fixtures", "reasoning_extra.yaml"), encoding="utf-8") as fh:
            extra = yaml.safe_load(fh)
        doc["families"] = {**extra["families"], **doc["families"]}
        doc["overrides"].update(extra["overrides"])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "reasoning.yaml")
            with open(path, "w", encoding="utf-8") as fh:
                yaml.safe_dump(doc, fh)
            reg = load_registry(path)
        for mid in ("ibm-granite/granite-3.3-8b-instruct", "acme/totally-not-granite"):
            p = plan(mid, ReasoningCfg(enabled=True), reg)
            self.assertEqual((p.family, p.template_kwargs), ("granite", {"thinking": True}))
        self.assertEqual(reg.select("Qwen/Qwen3-8B").name, "qwen3")  # type: ignore[union-attr]

    def test_a_broken_registry_entry_is_a_config_error_naming_it(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.yaml")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write("families:\n  x:\n    match: ['(']\n    method: none\n")
            with self.assertRaisesRegex(ConfigError, "families.x.match"):
                load_registry(path)


class TestServerRequests(unittest.TestCase):
    reg = load_registry()

    def test_the_same_plan_as_an_openai_chat_request_for_each_switch_kind(self) -> None:
        qwen = plan("Qwen/Qwen3-8B", ReasoningCfg(enabled=False), self.reg).chat_request("hi")
        self.assertEqual(qwen, {"messages": [{"role": "user", "content": "hi"}],
                                "chat_template_kwargs": {"enable_thinking": False}})
        oss = plan("openai/gpt-oss-20b", ReasoningCfg(effort="low"), self.reg).chat_request("hi")
        self.assertEqual((oss["reasoning_effort"], oss["chat_template_kwargs"]), ("low", {"reasoning_effort": "low"}))
        smol = plan("HuggingFaceTB/SmolLM3-3B", ReasoningCfg(enabled=False), self.reg).chat_request("hi")
        self.assertEqual(smol["messages"][0], {"role": "system", "content": "/no_think"})
        r1 = plan("deepseek-ai/DeepSeek-R1", ReasoningCfg(enabled=False), self.reg).chat_request("hi")
        self.assertEqual(r1["messages"][-1], {"role": "assistant", "content": "<think>\n\n</think>\n\n"})
        self.assertEqual((r1["continue_final_message"], r1["add_generation_prompt"]), (True, False))


class TestWithoutPyYaml(unittest.TestCase):
    def test_no_section_runs_unsplit_and_a_section_is_a_clear_error(self) -> None:
        import sys
        from unittest import mock

        from lem_worker.errors import WorkerError
        from lem_worker.reasoning import counter_for
        notes: list[str] = []
        with mock.patch.dict(sys.modules, {"yaml": None}):
            rc = counter_for(None, "Qwen/Qwen3-8B", None, notes)
            self.assertEqual((rc.plan.family, rc.marker_ids), (None, None))
            self.assertIn("PyYAML", notes[0])
            with self.assertRaisesRegex(WorkerError, "PyYAML"):
                counter_for(None, "Qwen/Qwen3-8B", {"enabled": False}, notes)


class TestSplitting(unittest.TestCase):
    def test_token_split_at_the_marker_and_no_marker_means_all_reasoning(self) -> None:
        self.assertEqual(split_counts([5, 6, 7, 9, 8, 1, 2], [9, 8]), (5, 2))
        self.assertEqual(split_counts([5, 6, 7], [9, 8]), (3, 0))
        self.assertIsNone(split_counts([5, 6], None))

    def test_text_split_for_harmony_channels(self) -> None:
        text = "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>42"
        r, a = split_text(text, "<|channel|>final<|message|>")
        self.assertEqual(a, "42")
        self.assertTrue(r.startswith("<|channel|>analysis"))


class FakeTemplateTokenizer:
    """FAKE tokenizer: records apply_chat_template calls; 1 char = 1 token id (ord)."""

    chat_template = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[list[dict[str, str]], dict[str, Any]]] = []

    def apply_chat_template(self, msgs: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool,
                            **kw: Any) -> str:
        self.calls.append((msgs, kw))
        return "".join(f"<{m['role']}>{m['content']}" for m in msgs) + "<assistant>"

    def __call__(self, text: str, add_special_tokens: bool = True, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


class TestPromptPlumbing(unittest.TestCase):
    def exp(self, model_id: str, reasoning: Any) -> Experiment:
        from lem_worker.config import PromptsCfg
        raw = {"reasoning": reasoning} if reasoning is not None else {}
        return Experiment("vllm", None, MeasurementCfg(), {}, raw, model=ModelCfg(id=model_id),
                          prompts=PromptsCfg(source="builtin", name="mixed", count=2), max_input_tokens=4096)

    def test_fake_tokenizer_gets_system_prompt_kwargs_and_prefix_from_the_plan(self) -> None:
        from lem_worker.backends.generation import tokenize_prompts
        from lem_worker.reasoning import counter_for
        for mid, sec, check in (
            ("HuggingFaceTB/SmolLM3-3B", {"enabled": False}, lambda msgs, kw, txt: msgs[0]["content"] == "/no_think"),
            ("Qwen/Qwen3-8B", {"enabled": False}, lambda msgs, kw, txt: kw == {"enable_thinking": False}),
            ("deepseek-ai/DeepSeek-R1", {"enabled": True}, lambda msgs, kw, txt: txt.endswith("<assistant><think>\n")),
        ):
            tok = FakeTemplateTokenizer()
            exp = self.exp(mid, sec)
            notes: list[str] = []
            rc = counter_for(tok, mid, exp.raw.get("reasoning"), notes)
            reqs = tokenize_prompts(tok, [2], 0, None, exp, notes, rc.plan)
            txt = "".join(chr(i) for i in reqs[0].input_ids)
            msgs, kw = tok.calls[0]
            self.assertTrue(check(msgs, kw, txt), (mid, msgs, kw, txt))
            self.assertEqual(rc.marker_ids, [ord(c) for c in "</think>"])


if __name__ == "__main__":
    unittest.main()
