"""Batch formation: static (in order), sorted (by input length, less padding), dynamic (token budget).

dynamic: requests sorted by length are packed greedily while (requests x (longest input +
max_new_tokens)) stays within batching.max_tokens_per_batch; batch_size caps the count only when
it is above 1 (its default of 1 would otherwise defeat the budget). A single request larger than
the budget forms its own batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from lem_worker.config import BatchingCfg
from lem_worker.errors import ConfigError


@dataclass
class Request:
    index: int
    input_ids: list[int]


def make_batches(requests: list[Request], cfg: BatchingCfg, max_new_tokens: int) -> list[list[Request]]:
    if cfg.strategy == "static":
        return [requests[i:i + cfg.batch_size] for i in range(0, len(requests), cfg.batch_size)]
    ordered = sorted(requests, key=lambda r: (len(r.input_ids), r.index))
    if cfg.strategy == "sorted":
        return [ordered[i:i + cfg.batch_size] for i in range(0, len(ordered), cfg.batch_size)]
    budget: Optional[int] = cfg.max_tokens_per_batch
    if budget is None:
        raise ConfigError("experiment.batching.max_tokens_per_batch: required for the dynamic strategy")
    batches: list[list[Request]] = []
    current: list[Request] = []
    for r in ordered:
        longest = max([len(x.input_ids) for x in current] + [len(r.input_ids)])
        cost = (len(current) + 1) * (longest + max_new_tokens)  # padded tokens the batch holds at the end
        capped = cfg.batch_size > 1 and len(current) >= cfg.batch_size
        if current and (cost > budget or capped):
            batches.append(current)
            current = []
        current.append(r)
    if current:
        batches.append(current)
    return batches
