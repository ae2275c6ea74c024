"""Reasoning formats: how a model is asked to reason or not, from the registry data/reasoning.yaml.

`plan(model_id, cfg)` turns the experiment's `reasoning: {enabled, effort, budget_tokens}` section into
a `ReasoningPlan`: chat-template keyword arguments, a system prompt, a prefix after the generation
prompt and OpenAI request fields. Every backend (through backends/prompting.tokenize_prompts) and the serving
client apply the same plan, so a family is asked the same way everywhere. `split_counts` counts the
reasoning tokens of an output (up to and including the family's answer marker) apart from the answer.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from lem_worker.errors import ConfigError

REGISTRY_PATH = os.path.join(os.path.dirname(__file__), "data", "reasoning.yaml")
METHODS = ("template_kwarg", "system", "prefix", "effort", "always", "none")


@dataclass(frozen=True)
class ReasoningCfg:
    enabled: Optional[bool] = None
    effort: Optional[str] = None
    budget_tokens: Optional[int] = None


@dataclass(frozen=True)
class Family:
    name: str
    match: tuple[str, ...]
    method: str
    default: bool
    on: Any = None
    off: Any = None
    kwarg: Optional[str] = None
    efforts: tuple[str, ...] = ()
    default_effort: Optional[str] = None
    effort_kwarg: Optional[str] = None
    request_field: Optional[str] = None
    answer_marker: Optional[str] = None
    format: Optional[str] = None


@dataclass(frozen=True)
class Registry:
    families: tuple[Family, ...]
    overrides: Mapping[str, str]

    def select(self, model_id: str) -> Optional[Family]:
        """The family of `model_id`: an exact override, else the first family whose pattern matches."""
        by_name = {f.name: f for f in self.families}
        if model_id in self.overrides:
            return by_name[self.overrides[model_id]]
        for f in self.families:
            if any(re.search(p, model_id, re.IGNORECASE) for p in f.match):
                return f
        return None


@dataclass
class ReasoningPlan:
    family: Optional[str]
    enabled: Optional[bool]
    effort: Optional[str] = None
    budget_tokens: Optional[int] = None
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    system_prompt: Optional[str] = None
    generation_prefix: str = ""
    request_fields: dict[str, Any] = field(default_factory=dict)
    answer_marker: Optional[str] = None
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """What the result records under workload.reasoning."""
        return {"family": self.family, "enabled": self.enabled, "effort": self.effort,
                "budget_tokens": self.budget_tokens, "template_kwargs": dict(self.template_kwargs),
                "system_prompt": self.system_prompt, "generation_prefix": self.generation_prefix or None,
                "request_fields": dict(self.request_fields), "answer_marker": self.answer_marker}

    def messages(self, user_text: str) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return msgs + [{"role": "user", "content": user_text}]

    def chat_request(self, user_text: str) -> dict[str, Any]:
        """The same plan for an OpenAI-compatible /v1/chat/completions request (server mode): system
        prompt in the messages, chat-template keywords as `chat_template_kwargs`, an effort as the
        family's request field, a generation prefix as a final assistant message that the server
        continues (`continue_final_message`, vLLM's extension of the protocol)."""
        body: dict[str, Any] = {"messages": self.messages(user_text)}
        if self.template_kwargs:
            body["chat_template_kwargs"] = dict(self.template_kwargs)
        for k, v in self.request_fields.items():
            if k != "chat_template_kwargs":
                body[k] = v
        if self.generation_prefix:
            body["messages"].append({"role": "assistant", "content": self.generation_prefix})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body


def _family(name: str, doc: Any, where: str) -> Family:
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping")
    match = doc.get("match")
    if not isinstance(match, list) or not match or not all(isinstance(m, str) for m in match):
        raise ConfigError(f"{where}.match: expected a non-empty list of regular expressions")
    for m in match:
        try:
            re.compile(m)
        except re.error as exc:
            raise ConfigError(f"{where}.match: {m!r} is not a regular expression: {exc}") from None
    method = doc.get("method")
    if method not in METHODS:
        raise ConfigError(f"{where}.method: {method!r} is not one of {', '.join(METHODS)}")
    if method in ("template_kwarg", "system", "prefix") and ("on" not in doc or "off" not in doc):
        raise ConfigError(f"{where}: method {method} needs 'on' and 'off'")
    if method == "template_kwarg" and not isinstance(doc.get("kwarg"), str):
        raise ConfigError(f"{where}.kwarg: method template_kwarg needs the chat-template keyword")
    efforts = doc.get("efforts", [])
    if method == "effort" and not efforts:
        raise ConfigError(f"{where}.efforts: method effort needs the allowed effort levels")
    return Family(name=name, match=tuple(match), method=method, default=bool(doc.get("default", False)),
                  on=doc.get("on"), off=doc.get("off"), kwarg=doc.get("kwarg"), efforts=tuple(efforts),
                  default_effort=doc.get("default_effort"), effort_kwarg=doc.get("effort_kwarg"),
                  request_field=doc.get("request_field"), answer_marker=doc.get("answer_marker"),
                  format=doc.get("format"))


def load_registry(path: str = REGISTRY_PATH) -> Registry:
    try:
        import yaml
    except ImportError:
        from lem_worker import errors
        missing: type[Exception] = getattr(errors, "MissingDependency", errors.WorkerError)
        raise missing("PyYAML is needed to read the reasoning registry (pip install pyyaml)") from None
    with open(path, "r", encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, dict) or not isinstance(doc.get("families"), dict):
        raise ConfigError(f"{path}: expected a mapping with 'families'")
    fams = tuple(_family(str(n), d, f"{path}: families.{n}") for n, d in doc["families"].items())
    overrides = doc.get("overrides") or {}
    names = {f.name for f in fams}
    for mid, fam in overrides.items():
        if fam not in names:
            raise ConfigError(f"{path}: overrides.{mid}: unknown family {fam!r}")
    return Registry(fams, {str(k): str(v) for k, v in overrides.items()})


def parse_reasoning(raw: Any) -> Optional[ReasoningCfg]:
    """The experiment's `reasoning` section (None when absent)."""
    if raw is None:
        return None
    p = "experiment.reasoning"
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected an object")
    unknown = set(raw) - {"enabled", "effort", "budget_tokens"}
    if unknown:
        raise ConfigError(f"{p}: unknown field(s) {', '.join(sorted(unknown))}")
    enabled, effort, budget = raw.get("enabled"), raw.get("effort"), raw.get("budget_tokens")
    if enabled is not None and not isinstance(enabled, bool):
        raise ConfigError(f"{p}.enabled: expected true/false, got {enabled!r}")
    if effort is not None and effort not in ("low", "medium", "high"):
        raise ConfigError(f"{p}.effort: {effort!r} is not one of low, medium, high")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
        raise ConfigError(f"{p}.budget_tokens: expected a positive integer, got {budget!r}")
    return ReasoningCfg(enabled, effort, budget)


def plan(model_id: str, cfg: Optional[ReasoningCfg], registry: Optional[Registry] = None) -> ReasoningPlan:
    """How to ask `model_id` for `cfg`; a request the family cannot honour is a ConfigError."""
    fam = (registry or load_registry()).select(model_id)
    p = "experiment.reasoning"
    if cfg is None:  # no reasoning section: the model's own default, nothing added to the prompt
        if fam is None:
            return ReasoningPlan(None, None)
        return ReasoningPlan(fam.name, fam.default and fam.method != "none",
                             answer_marker=fam.answer_marker if fam.method != "none" else None)
    if fam is None:
        if cfg.enabled is not None or cfg.effort is not None:
            raise ConfigError(f"{p}: model {model_id} matches no family of the reasoning registry "
                              f"(lem_worker/data/reasoning.yaml); add one or remove the reasoning section")
        return ReasoningPlan(None, None, budget_tokens=cfg.budget_tokens)
    want = fam.default if cfg.enabled is None else cfg.enabled
    out = ReasoningPlan(fam.name, want, budget_tokens=cfg.budget_tokens, answer_marker=fam.answer_marker)
    if fam.method == "none":
        if cfg.enabled:
            raise ConfigError(f"{p}.enabled: {model_id} ({fam.name}) has no reasoning mode")
        out.enabled, out.answer_marker = False, None
    elif fam.method in ("always", "effort") and cfg.enabled is False:
        raise ConfigError(f"{p}.enabled: {model_id} ({fam.name}) always reasons; it cannot be switched off"
                          + (f" (use reasoning.effort: {fam.efforts[0]})" if fam.efforts else ""))
    elif fam.method == "template_kwarg":
        assert fam.kwarg is not None
        out.template_kwargs[fam.kwarg] = fam.on if want else fam.off
        if fam.request_field == "chat_template_kwargs":
            out.request_fields["chat_template_kwargs"] = {fam.kwarg: out.template_kwargs[fam.kwarg]}
    elif fam.method == "system":
        out.system_prompt = str(fam.on if want else fam.off)
    elif fam.method == "prefix":
        out.generation_prefix = str(fam.on if want else fam.off)
    if cfg.effort is not None or fam.method == "effort":
        if not fam.efforts:
            raise ConfigError(f"{p}.effort: {model_id} ({fam.name}) takes no effort level")
        effort = cfg.effort or fam.default_effort or fam.efforts[0]
        if effort not in fam.efforts:
            raise ConfigError(f"{p}.effort: {effort!r} is not one of {', '.join(fam.efforts)} for {fam.name}")
        out.effort = effort
        if fam.effort_kwarg:
            out.template_kwargs[fam.effort_kwarg] = effort
        if fam.request_field and fam.method == "effort":
            out.request_fields[fam.request_field] = effort
    if cfg.budget_tokens is not None:
        out.notes.append(f"reasoning.budget_tokens {cfg.budget_tokens} is recorded, not enforced: {fam.name} has no "
                         "thinking-budget switch; max_output_tokens bounds reasoning + answer")
    return out


def split_counts(output_ids: Sequence[int], marker_ids: Optional[Sequence[int]]) -> Optional[tuple[int, int]]:
    """(reasoning tokens, answer tokens) of one output: reasoning runs up to and including the first
    occurrence of the answer marker's token ids. An output with no marker is all reasoning (the answer was
    never reached). None when the family has no marker (nothing to split)."""
    if not marker_ids:
        return None
    m = list(marker_ids)
    ids = list(output_ids)
    for i in range(len(ids) - len(m) + 1):
        if ids[i:i + len(m)] == m:
            return i + len(m), len(ids) - i - len(m)
    return len(ids), 0


def split_text(text: str, marker: Optional[str]) -> tuple[str, str]:
    """(reasoning, answer) of a decoded output; no marker: everything is the answer."""
    if not marker or marker not in text:
        return "", text
    i = text.index(marker) + len(marker)
    return text[:i], text[i:]


class ReasoningCounter:
    """A run's reasoning plan with its answer marker as token ids (tokenized once, outside every window)."""

    def __init__(self, rplan: ReasoningPlan, marker_ids: Optional[list[int]]) -> None:
        self.plan = rplan
        self.marker_ids = marker_ids

    def split(self, output_ids: Sequence[int]) -> Optional[tuple[int, int]]:
        return split_counts(output_ids, self.marker_ids)


def counter_for(tokenizer: Any, model_id: str, raw_section: Any, notes: list[str]) -> ReasoningCounter:
    """The run's reasoning plan and answer-marker ids; notes say what was applied. Without PyYAML the registry
    cannot be read: a run with a reasoning section fails (MissingDependency), one without runs unsplit."""
    cfg = parse_reasoning(raw_section)
    try:
        import yaml  # noqa: F401
    except ImportError:
        if cfg is not None:
            load_registry()  # raises the clear missing-dependency error
        notes.append("reasoning registry not read (PyYAML is not installed): reasoning tokens are not split")
        return ReasoningCounter(ReasoningPlan(None, None), None)
    rplan = plan(model_id, cfg)
    marker_ids: Optional[list[int]] = None
    if rplan.answer_marker and tokenizer is not None:
        try:
            marker_ids = list(tokenizer(rplan.answer_marker, add_special_tokens=False)["input_ids"])
        except Exception:  # noqa: BLE001 - a tokenizer that cannot encode it: no split
            marker_ids = None
    if rplan.family is not None:
        notes.append(f"reasoning: family {rplan.family}, "
                     + ("model default" if raw_section is None else f"enabled={rplan.enabled}")
                     + (f", effort {rplan.effort}" if rplan.effort else "")
                     + ("; reasoning tokens counted up to the answer marker" if marker_ids else ""))
    notes.extend(rplan.notes)
    return ReasoningCounter(rplan, marker_ids)


def reasoning_metrics(ms: Any, rc: Optional[ReasoningCounter], reasoning_tokens: int, answer_tokens: int,
                      split_outputs: int, completed: int) -> None:
    """reasoning_output_tokens / answer_output_tokens of a window (a report.MetricSet): split at the family's
    answer marker, null with the reason when the outputs could not be split."""
    if rc is None or rc.plan.family is None:
        why = "the model matches no family of the reasoning registry"
    elif rc.marker_ids is None:
        why = f"family {rc.plan.family} has no answer marker to split reasoning from answer"
    elif split_outputs == 0 or split_outputs < completed:
        why = "outputs were not available as token ids to split"
    else:
        ms.put("reasoning_output_tokens", float(reasoning_tokens))
        ms.put("answer_output_tokens", float(answer_tokens))
        return
    ms.put("reasoning_output_tokens", None, why)
    ms.put("answer_output_tokens", None, why)
