"""The PyTorch (transformers) backend: measured generation over a prompt set.

Flow: load model -> tokenize prompts and form batches (outside every window) -> start the
meter (NVML/RAPL, sampler) -> idle baseline -> warm-up (fixed or CV) -> steady window (full
passes over all batches, repeated until measurement.min_window_s) -> prefill window (the same
batches generating 1 new token) -> metrics. TTFT and ITL come from a streamer inside the single
generation call of each batch: nothing is generated twice for timing.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from lem_worker.backends import register
from lem_worker.backends.generation import (  # noqa: F401  (percentile, PassStats re-exported for callers)
    Generation,
    PassStats,
    count_new_tokens,
    percentile,
    run_generation,
    tokenize_prompts,
)
from lem_worker.backends import torch_stats
from lem_worker.backends.loader import LoadedModel, load_transformers
from lem_worker.batching import Request, make_batches
from lem_worker.config import Experiment, WorkerConfig
from lem_worker.engines import CACHE, note_first_request
from lem_worker.environment import module_version
from lem_worker.errors import Terminated, WorkerError
from lem_worker.log import log
from lem_worker.reasoning import ReasoningCounter, counter_for
from lem_worker.timeutil import utc_now_iso

Loader = Callable[[Experiment], LoadedModel]


class TimingStreamer:
    """transformers streamer protocol (put/end): timestamps each decoding step.

    generate() calls put(prompt_ids) once, then put(new_tokens) once per step."""

    __slots__ = ("times", "_prompt_seen", "_clock")

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False
        self._clock = time.perf_counter

    def put(self, value: Any) -> None:
        if self._prompt_seen:
            self.times.append(self._clock())
        else:
            self._prompt_seen = True

    def end(self) -> None:
        pass


@dataclass
class PreparedBatch:
    requests: list[Request]
    input_ids: Any  # tensor [B, L] (left-padded)
    attention_mask: Any
    input_tokens: int  # non-pad tokens
    width: int


def used_cuda_devices(model: Any) -> Optional[list[int]]:
    """CUDA device indices holding the model's parameters (None when not on CUDA / unknown)."""
    try:
        idx = {p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"}
    except Exception:  # noqa: BLE001
        return None
    return sorted(idx) or None


def tokenize(loaded: LoadedModel, exp: Experiment, notes: list[str],
             rc: Optional[ReasoningCounter] = None) -> list[Request]:
    return tokenize_prompts(loaded.tokenizer, loaded.eos_ids, loaded.pad_id, loaded.vocab_size, exp, notes,
                            rc.plan if rc is not None else None)


def prepare(loaded: LoadedModel, batches: list[list[Request]]) -> list[PreparedBatch]:
    torch = loaded.torch
    out = []
    for b in batches:
        width = max(len(r.input_ids) for r in b)
        ids = [[loaded.pad_id] * (width - len(r.input_ids)) + r.input_ids for r in b]
        mask = [[0] * (width - len(r.input_ids)) + [1] * len(r.input_ids) for r in b]
        out.append(PreparedBatch(
            b,
            torch.tensor(ids, dtype=torch.long, device=loaded.device),
            torch.tensor(mask, dtype=torch.long, device=loaded.device),
            sum(len(r.input_ids) for r in b),
            width,
        ))
    return out


def generate_kwargs(exp: Experiment, loaded: LoadedModel, max_new: int) -> dict[str, Any]:
    d = exp.decoder
    kw: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": d.do_sample, "pad_token_id": loaded.pad_id}
    if d.fixed_length or loaded.ignore_eos:
        kw["min_new_tokens"] = max_new
    if d.do_sample:
        kw["temperature"] = d.temperature if d.temperature > 0 else 1.0
        kw["top_p"] = d.top_p
        kw["top_k"] = d.top_k
    if d.repetition_penalty is not None:
        kw["repetition_penalty"] = d.repetition_penalty
    if loaded.eos_ids:
        kw["eos_token_id"] = loaded.eos_ids if len(loaded.eos_ids) > 1 else loaded.eos_ids[0]
    kw.update(loaded.generate_extra)
    return kw


class Harness:
    def __init__(self, loaded: LoadedModel, exp: Experiment, batches: list[PreparedBatch]) -> None:
        self.loaded = loaded
        self.exp = exp
        self.batches = batches
        self.eos = set(loaded.eos_ids)
        self.rc: Optional[ReasoningCounter] = None
        self.kwargs_full = generate_kwargs(exp, loaded, exp.max_output_tokens)
        self.kwargs_prefill = generate_kwargs(exp, loaded, 1)
        self.torch = loaded.torch

    def run_batch(self, b: PreparedBatch, kwargs: dict[str, Any], stats: Optional[PassStats]) -> None:
        streamer = TimingStreamer()
        t0 = time.perf_counter()
        try:
            with self.torch.inference_mode():
                out = self.loaded.model.generate(input_ids=b.input_ids, attention_mask=b.attention_mask,
                                                 streamer=streamer, **kwargs)
        except WorkerError:  # Terminated (SIGTERM) or the timeout: not a failed batch
            raise
        except Exception as exc:  # noqa: BLE001 - a failed batch is counted, not fatal
            if stats is not None:
                stats.fail_batch(len(b.requests), exc)
            return
        self.loaded.sync()
        t_end = time.perf_counter()
        if stats is None:
            return
        new = out[:, b.width:].tolist()
        times = streamer.times
        stats.requests += len(b.requests)
        stats.input_tokens += b.input_tokens
        for row in new:
            n = count_new_tokens(row, self.eos, self.loaded.ignore_eos or self.exp.decoder.fixed_length)
            stats.output_tokens += n
            stats.count_reasoning(self.rc, row[:n])
            done = times[n - 1] if 0 < n <= len(times) else t_end
            stats.latencies.append(done - t0)
            if times:
                stats.ttfts.append(times[0] - t0)
                if n > 1 and n <= len(times):
                    stats.itls.append((times[n - 1] - times[0]) / (n - 1))
        stats.step_gaps.extend(b2 - a for a, b2 in zip(times, times[1:]))

    def run_pass(self, prefill: bool, stop: threading.Event) -> PassStats:
        kwargs = self.kwargs_prefill if prefill else self.kwargs_full
        stats = PassStats()
        for b in self.batches:
            if stop.is_set():
                raise Terminated("stopped during generation")
            self.run_batch(b, kwargs, stats)
        return stats


@register("pytorch")
def run_pytorch(cfg: WorkerConfig, stop: threading.Event, loader: Optional[Loader] = None, **meter_kwargs: Any) -> dict[str, Any]:
    exp = cfg.experiment
    started_at = utc_now_iso()
    notes: list[str] = []
    reuse = loader is None  # a loader passed in (tests) is not described by the engine key
    if loader is None:
        loader = load_transformers
        spec = exp.pytorch.loader
        if spec is not None:  # test/advanced hook: "module:function"
            import importlib

            mod, fn = spec.split(":", 1)
            hook: Loader = getattr(importlib.import_module(mod), fn)
            loader = hook
            notes.append(f"model loaded by pytorch.loader {spec}")
    load = loader
    loaded, engine = CACHE.acquire(engine_key(exp), lambda: load(exp), reuse)
    load_s: Optional[float] = engine["load_s"]
    notes.extend(loaded.notes)
    assert exp.model is not None
    rc = counter_for(loaded.tokenizer, exp.model.id, exp.raw.get("reasoning"), notes)
    requests = tokenize(loaded, exp, notes, rc)
    batches = make_batches(requests, exp.batching, exp.max_output_tokens)
    prepared = prepare(loaded, batches)
    harness = Harness(loaded, exp, prepared)
    harness.rc = rc
    log(f"pytorch: {len(requests)} request(s) in {len(prepared)} batch(es) ({exp.batching.strategy}), "
        f"max_new_tokens {exp.max_output_tokens}, device {loaded.device}")
    counter = [0]

    def warm_step() -> None:
        b = prepared[counter[0] % len(prepared)]
        counter[0] += 1
        harness.run_batch(b, harness.kwargs_full, None)

    env_extra: dict[str, Any] = {}
    try:
        env_extra["torch_cuda_version"] = getattr(loaded.torch.version, "cuda", None)
    except Exception:  # noqa: BLE001
        env_extra["torch_cuda_version"] = None
    gen = Generation(
        run_pass=harness.run_pass,
        warm_step=warm_step,
        sync=loaded.sync,
        requests_per_pass=len(requests),
        batch_sizes=[len(b.requests) for b in prepared],
        load_s=load_s,
        notes=notes,
        library_versions={
            "torch": module_version("torch"), "transformers": module_version("transformers"),
            "numpy": module_version("numpy"), "accelerate": module_version("accelerate"),
            "bitsandbytes": module_version("bitsandbytes") if exp.quantization.startswith("bnb") else None,
        },
        model_info=loaded.info,
        generate_kwargs=harness.kwargs_full,
        reasoning=rc,
        fixed_length=bool(exp.decoder.fixed_length or loaded.ignore_eos),
        gpu_ids=used_cuda_devices(loaded.model),
        env_extra=env_extra,
        padded_input_per_pass=sum(b.width * len(b.requests) for b in prepared),
        model_bytes=torch_stats.model_bytes(loaded.model),
        arch_config=torch_stats.arch_config(loaded.model),
        engine_stats=torch_stats.peak_memory_stats(loaded.torch, used_cuda_devices(loaded.model)),
    )
    if (exp.raw.get("pytorch") or {}).get("profiler"):
        def profiled(b: PreparedBatch) -> int:
            st = PassStats()
            harness.run_batch(b, harness.kwargs_full, st)
            return st.output_tokens
        gen.after_windows = torch_stats.profiler_pass(loaded.torch, profiled, prepared[0])
    result = run_generation(cfg, stop, gen, started_at, **meter_kwargs)
    note_first_request(engine, result.get("warmup"))
    result["engine"] = engine
    return result


def engine_key(exp: Experiment) -> dict[str, Any]:
    """What identifies a loaded transformers model: backend, model (id, revision, weights), dtype,
    quantisation and the engine arguments (the pytorch section, the loader hook)."""
    raw = exp.raw
    return {"backend": "pytorch", "model": raw.get("model"), "precision": exp.precision,
            "quantization": exp.quantization, "engine": raw.get("pytorch"), "engine_args": exp.extra.get("engine_args"),
            "loader": exp.pytorch.loader}
