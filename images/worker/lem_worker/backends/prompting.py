"""Prompt preparation every LLM backend shares: the prompt set as token ids, through the tokenizer's chat
template when it has one, asked to reason or not as the run's reasoning plan says (lem_worker/reasoning.py).
Runs once, outside every measured window."""
from __future__ import annotations

from typing import Any, Optional

from lem_worker.batching import Request
from lem_worker.config import Experiment
from lem_worker.errors import ConfigError
from lem_worker.prompts import load_prompts
from lem_worker.reasoning import ReasoningPlan


def tokenize_prompts(tokenizer: Any, eos_ids: list[int], pad_id: Optional[int], vocab_size: Optional[int],
                     exp: Experiment, notes: list[str], rplan: Optional[ReasoningPlan] = None) -> list[Request]:
    """The prompt set as token ids, truncated to max_input_tokens (chat template when the tokenizer has one),
    asked to reason or not as `rplan` says (system prompt, chat-template kwargs, generation prefix)."""
    special = tuple(eos_ids + ([pad_id] if pad_id is not None else []))
    pset = load_prompts(exp.prompts, vocab_size, special, seed=exp.prompts.seed)
    notes.extend(pset.notes)
    if pset.token_ids is not None:
        return [Request(i, ids[: exp.max_input_tokens]) for i, ids in enumerate(pset.token_ids)]
    tok = tokenizer
    use_chat = exp.prompts.chat_template and bool(getattr(tok, "chat_template", None))
    if use_chat:
        notes.append("prompts wrapped in the tokenizer's chat template (user turn + generation prompt)")
    needs_template = rplan is not None and (rplan.system_prompt or rplan.template_kwargs)
    if needs_template and not use_chat:
        raise ConfigError("experiment.reasoning: this family is switched through the chat template, but the tokenizer "
                          "has none (or extra.chat_template is false)")
    tkw = dict(rplan.template_kwargs) if rplan is not None else {}
    prefix = rplan.generation_prefix if rplan is not None else ""
    reqs = []
    truncated = 0
    assert pset.texts is not None
    for i, text in enumerate(pset.texts):
        if use_chat:
            msgs = rplan.messages(text) if rplan is not None else [{"role": "user", "content": text}]
            text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **tkw)
        text += prefix
        full = tok(text, add_special_tokens=not use_chat)["input_ids"]
        ids = list(full[: exp.max_input_tokens])
        truncated += len(full) > len(ids)
        if not ids:
            raise ConfigError(f"experiment.prompts: prompt {i} tokenizes to nothing")
        reqs.append(Request(i, ids))
    if truncated:
        notes.append(f"{truncated} prompt(s) truncated to max_input_tokens={exp.max_input_tokens}")
    return reqs
