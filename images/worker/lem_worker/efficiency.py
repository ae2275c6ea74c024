"""Extended efficiency metrics of an LLM run (issue 13 §5), each measured where the backend can, else null
with the reason:

* gpu_memory_peak_gib: highest NVML memory in use during the steady window, summed over the measured
  GPUs (whole device: other processes on it count too); gpu_memory_model_gib: the weights' bytes where
  the backend knows them; gpu_memory_peak_allocated_gib: torch's own peak allocation (PyTorch backend).
* kv_cache_usage_pct / prefix_cache_hit_rate: from the engine's own counters (vLLM `LLM.get_metrics()`),
  as deltas over the steady window; kv_cache_gib: the KV cache the engine allocated (vLLM: GPU blocks x
  block size x 2 x layers x KV heads x head dim x element size).
* gpu_util_mean_pct: mean of the sampler's NVML utilisation (percent of time a kernel ran) in the window.
* batch_fill: requests per batch / batching.batch_size; padding_overhead: padded input tokens / real
  input tokens - 1 (static and sorted batching of the PyTorch backend; continuous batching pads nothing).
* output_tokens_per_s_per_gib: throughput per GiB of peak GPU memory.
* flops_per_output_token_estimate: analytical, from the architecture config (2 x non-embedding
  parameters + 2 x vocab x hidden for the LM head + 4 x layers x context x attention width for
  QK^T and AV); an estimate, labelled as such, never measured.
"""
from __future__ import annotations

import statistics
from typing import Any, Callable, Mapping, Optional

from lem_worker.report import MetricSet

GIB = 1024.0 ** 3
EngineStats = Callable[[str], dict[str, Optional[float]]]


def _first(cfg: Mapping[str, Any], *keys: str) -> Optional[float]:
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def flops_per_token_estimate(cfg: Optional[Mapping[str, Any]], n_params: Optional[float],
                             context: float) -> tuple[Optional[float], Optional[str]]:
    """(FLOPs per generated token, None) or (None, why) from a Hugging Face architecture config."""
    if not cfg:
        return None, "no architecture config available to the worker"
    if any(cfg.get(k) for k in ("num_local_experts", "num_experts", "n_routed_experts")):
        return None, "mixture-of-experts model: the active parameters per token are not derived from the config"
    layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    d = _first(cfg, "hidden_size", "n_embd", "d_model")
    vocab = _first(cfg, "vocab_size")
    heads = _first(cfg, "num_attention_heads", "n_head")
    if layers is None or d is None or vocab is None or heads is None:
        return None, "the architecture config lacks layers, hidden size, heads or vocabulary size"
    head_dim = _first(cfg, "head_dim") or d / heads
    d_attn = heads * head_dim
    if n_params is not None:
        tied = cfg.get("tie_word_embeddings", True) is not False
        non_emb = n_params - vocab * d * (1 if tied else 2)
    else:
        kv = (_first(cfg, "num_key_value_heads") or heads) * head_dim
        ffn = _first(cfg, "intermediate_size", "n_inner") or 4 * d
        gated = str(cfg.get("hidden_act", cfg.get("activation_function", ""))) in ("silu", "swiglu", "gelu_pytorch_tanh")
        non_emb = layers * (2 * d * d_attn + 2 * d * kv + (3 if gated else 2) * d * ffn)
    if non_emb <= 0:
        return None, "parameter count smaller than the embeddings: config and model disagree"
    return 2 * non_emb + 2 * vocab * d + 4 * layers * context * d_attn, None


def kv_bytes_per_token(cfg: Optional[Mapping[str, Any]], dtype_bytes: float) -> Optional[float]:
    """K and V of every layer for one token: 2 x layers x KV heads x head dim x element size."""
    if not cfg:
        return None
    layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    d = _first(cfg, "hidden_size", "n_embd", "d_model")
    heads = _first(cfg, "num_attention_heads", "n_head")
    if layers is None or d is None or heads is None:
        return None
    head_dim = _first(cfg, "head_dim") or d / heads
    return 2 * layers * (_first(cfg, "num_key_value_heads") or heads) * head_dim * dtype_bytes


def window_samples(meter: Any, t0: float, t1: float) -> dict[str, list[Any]]:
    sampler = getattr(meter, "sampler", None)
    if sampler is None:
        return {}
    return {k: [s for s in v if t0 <= s.t <= t1] for k, v in sampler.snapshot().items()}


def efficiency_metrics(ms: MetricSet, meter: Any, win: Any, *, reps: int, requests: int, input_tokens: int,
                       output_tokens: int, batch_sizes: list[int], batch_size: int,
                       padded_input_per_pass: Optional[int], model_bytes: Optional[int],
                       stats_begin: Mapping[str, Optional[float]], stats_end: Mapping[str, Optional[float]],
                       arch: Optional[Mapping[str, Any]], n_params: Optional[float], max_output_tokens: int) -> list[str]:
    notes: list[str] = []
    samples = window_samples(meter, win.t0, win.t1)
    no_gpu = "no GPU samples in the steady window (no NVML GPU measured)"
    mems = [max(m) for m in ([s.mem_used_mib for s in v if s.mem_used_mib is not None] for v in samples.values()) if m]
    ms.put("gpu_memory_peak_gib", sum(mems) / 1024.0 if mems else None, no_gpu)
    utils = [s.sm_util_pct for v in samples.values() for s in v if s.sm_util_pct is not None]
    ms.put("gpu_util_mean_pct", statistics.fmean(utils) if utils else None,
           no_gpu if not samples else "NVML reported no utilisation for these GPUs")
    ms.put("gpu_memory_model_gib", model_bytes / GIB if model_bytes else None,
           "the engine does not expose its weights' size through its offline API")
    ms.put("gpu_memory_peak_allocated_gib", stats_end.get("peak_allocated_gib"),
           "torch's allocator statistics are only visible in the PyTorch backend's own process")
    ms.put("kv_cache_usage_pct", stats_end.get("kv_cache_usage_pct"), "the engine reports no KV-cache usage")
    ms.put("kv_cache_gib", stats_end.get("kv_cache_gib"), "the engine does not report its KV-cache allocation")
    q0, q1 = stats_begin.get("prefix_cache_queries"), stats_end.get("prefix_cache_queries")
    h0, h1 = stats_begin.get("prefix_cache_hits"), stats_end.get("prefix_cache_hits")
    if None not in (q0, q1, h0, h1) and (q1 or 0) - (q0 or 0) > 0:
        ms.put("prefix_cache_hit_rate", ((h1 or 0) - (h0 or 0)) / ((q1 or 0) - (q0 or 0)))
    else:
        ms.put("prefix_cache_hit_rate", None, "the engine reports no prefix-cache counters (or no lookups in the window)")
    ms.put("batch_fill", statistics.fmean(batch_sizes) / batch_size if batch_sizes and batch_size else None,
           "no batches")
    real = input_tokens / reps if reps else 0
    if padded_input_per_pass is not None and real > 0:
        ms.put("padding_overhead", padded_input_per_pass / real - 1.0)
    else:
        ms.put("padding_overhead", None, "continuous batching: the engine runs unpadded sequences")
    tps = output_tokens / win.duration_s if win.duration_s > 0 else None
    peak = ms.get("gpu_memory_peak_gib")
    ms.ratio("output_tokens_per_s_per_gib", tps, peak, "zero window", ms.unmeasured.get("gpu_memory_peak_gib", no_gpu))
    context = (input_tokens / requests if requests else 0) + (output_tokens / requests + 1) / 2 if requests else 0
    est, why = flops_per_token_estimate(arch, n_params, context)
    ms.put("flops_per_output_token_estimate", est, why)
    if est is not None:
        notes.append(f"flops_per_output_token_estimate is an analytical ESTIMATE (not measured): 2 x non-embedding "
                     f"parameters + LM head + attention at a mean context of {context:.0f} tokens")
    return notes
