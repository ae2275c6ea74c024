"""Prompt sources: shipped JSONL sets, local JSONL/CSV, Hugging Face datasets, synthetic token shapes.

Shipped sets live in lem_worker/data/prompts/*.jsonl (original text written for lem). The
builtin name "mixed" is the whole set; "short", "medium" and "long" select by the `kind` field.
Sets are taken in file order (deterministic across cycles); asking for more prompts than a set
holds cycles through it again, with a note.
"""
from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import dataclass
from typing import Any, Optional

from lem_worker.config import PromptsCfg
from lem_worker.errors import ConfigError, MissingDependency

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
KINDS = ("short", "medium", "long")


@dataclass
class PromptSet:
    texts: Optional[list[str]]  # None for synthetic sets
    token_ids: Optional[list[list[int]]]  # set for synthetic sets
    description: str
    notes: list[str]


def _take(items: list[Any], count: Optional[int], what: str, notes: list[str]) -> list[Any]:
    if not items:
        raise ConfigError(f"experiment.prompts: {what} contains no prompts")
    if count is None:
        return items
    if count > len(items):
        notes.append(f"{what} has {len(items)} prompts; cycled to reach prompts.count={count}")
        return [items[i % len(items)] for i in range(count)]
    return items[:count]


def _read_jsonl(path: str, column: Optional[str]) -> list[str]:
    out: list[str] = []
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{lineno}: not valid JSON ({exc})") from None
            if isinstance(rec, str):
                out.append(rec)
                continue
            if not isinstance(rec, dict):
                raise ConfigError(f"{path}:{lineno}: expected an object or a string")
            keys = [column] if column else ["text", "prompt", "input", "question"]
            for k in keys:
                if isinstance(rec.get(k), str):
                    out.append(rec[k])
                    break
            else:
                raise ConfigError(f"{path}:{lineno}: no string field {' / '.join(keys)}")
    return out


def _read_csv(path: str, column: Optional[str]) -> list[str]:
    with open(path, "r", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        col = column or next((c for c in ("text", "prompt", "input", "question") if c in fields), None)
        if col is None or col not in fields:
            raise ConfigError(f"{path}: no column {column or 'text/prompt/input/question'} (columns: {', '.join(fields)})")
        return [row[col] for row in reader if row.get(col)]


def builtin_prompts(name: str) -> list[str]:
    path = os.path.join(DATA_DIR, "prompts", "mixed.jsonl")
    kind: Optional[str] = None
    if name in KINDS:
        kind = name
    elif name != "mixed":
        alt = os.path.join(DATA_DIR, "prompts", f"{name}.jsonl")
        if not os.path.isfile(alt):
            raise ConfigError(f"experiment.prompts.name: no builtin set {name!r} (have: mixed, short, medium, long)")
        path = alt
    out: list[str] = []
    with open(path, "r", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                if kind is None or rec.get("kind") == kind:
                    out.append(rec["text"])
    return out


def load_prompts(cfg: PromptsCfg, vocab_size: Optional[int] = None, special_ids: tuple[int, ...] = (), seed: int = 0) -> PromptSet:
    notes: list[str] = []
    if cfg.source == "builtin":
        texts = _take(builtin_prompts(cfg.name), cfg.count, f"builtin set {cfg.name!r}", notes)
        return PromptSet(texts, None, f"builtin:{cfg.name}", notes)
    if cfg.source == "file":
        assert cfg.path is not None
        if not os.path.isfile(cfg.path):
            raise ConfigError(f"experiment.prompts.path: {cfg.path} does not exist")
        lower = cfg.path.lower()
        if lower.endswith(".csv"):
            texts = _read_csv(cfg.path, cfg.column)
        elif lower.endswith((".jsonl", ".json", ".ndjson")):
            texts = _read_jsonl(cfg.path, cfg.column)
        else:
            raise ConfigError(f"experiment.prompts.path: {cfg.path}: expected a .jsonl or .csv file")
        return PromptSet(_take(texts, cfg.count, cfg.path, notes), None, f"file:{cfg.path}", notes)
    if cfg.source == "huggingface":
        try:
            import datasets
        except ImportError:
            raise MissingDependency("experiment.prompts.source is huggingface but the `datasets` package is not installed",
                                    ["datasets"]) from None
        ds = datasets.load_dataset(cfg.dataset, cfg.subset, split=cfg.split)
        col = cfg.column or "text"
        if col not in ds.column_names:
            raise ConfigError(f"experiment.prompts.column: {col!r} not in dataset columns {ds.column_names}")
        n = len(ds) if cfg.count is None else min(len(ds), cfg.count)
        texts = [str(x) for x in ds.select(range(n))[col]]
        return PromptSet(_take(texts, cfg.count, f"{cfg.dataset}:{cfg.split}", notes), None,
                         f"huggingface:{cfg.dataset}/{cfg.subset or ''}:{cfg.split}", notes)
    # synthetic token shapes: no tokenizer needed
    assert cfg.input_len is not None and cfg.count is not None
    vocab = vocab_size or 32000
    rng = random.Random(seed)
    lo = min(10, vocab - 1)
    specials = set(special_ids)
    ids: list[list[int]] = []
    for _ in range(cfg.count):
        row: list[int] = []
        while len(row) < cfg.input_len:
            t = rng.randrange(lo, vocab)
            if t not in specials:
                row.append(t)
        ids.append(row)
    notes.append(f"synthetic prompts: {cfg.count} x {cfg.input_len} random token ids (seeded) from a vocabulary of {vocab}")
    return PromptSet(None, ids, f"synthetic:{cfg.count}x{cfg.input_len}", notes)
