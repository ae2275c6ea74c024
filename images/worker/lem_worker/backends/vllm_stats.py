"""What the vLLM backend reads from the engine besides tokens: per-request timing from
`RequestOutput.metrics` (V0 `RequestMetrics` or V1 `RequestStateStats`), the V1 engine's own counters
(`LLM.get_metrics()`: prefix-cache queries/hits, KV-cache usage) and the KV cache it allocated (its
cache config), and the model's Hugging Face config for the FLOPs estimate."""
from __future__ import annotations

import math
from typing import Any, Optional

from lem_worker.efficiency import kv_bytes_per_token


def _finite(*xs: Any) -> bool:
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in xs)


def request_timing(metrics: Any, t0_wall: float, n_out: int) -> Optional[tuple[float, float, Optional[float]]]:
    """(ttft, latency, per-request mean ITL) relative to the batch's generate() call (wall clock), from
    RequestOutput.metrics in either documented shape; None when it carries no usable timing."""
    if metrics is None:
        return None
    ftt = getattr(metrics, "first_token_time", None)
    if ftt is not None:  # V0 RequestMetrics: time.time() stamps
        last = getattr(metrics, "last_token_time", None)
        if last is None:
            last = getattr(metrics, "finished_time", None)
        if last is None or not _finite(ftt, last):
            return None
        ttft, latency, decode = ftt - t0_wall, last - t0_wall, last - ftt
    else:  # V1 RequestStateStats: frontend arrival_time (time.time()) + engine-core monotonic first/last stamps
        arrival = getattr(metrics, "arrival_time", None)
        ftl = getattr(metrics, "first_token_latency", None)
        fts = getattr(metrics, "first_token_ts", None)
        lts = getattr(metrics, "last_token_ts", None)
        if not _finite(arrival, ftl, fts, lts) or not arrival or not fts:
            return None
        ttft = arrival - t0_wall + ftl
        decode = lts - fts
        latency = ttft + decode
    if ttft < 0 or decode < 0 or latency < ttft:
        return None
    itl = decode / (n_out - 1) if n_out > 1 else None
    return ttft, latency, itl


VLLM_COUNTERS = {"vllm:prefix_cache_queries": "prefix_cache_queries", "vllm:prefix_cache_hits": "prefix_cache_hits",
                 "vllm:kv_cache_usage_perc": "kv_cache_usage_pct"}


KV_BYTES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "float16": 2, "bfloat16": 2, "float32": 4}


def kv_cache_gib(llm: Any, arch: Optional[dict[str, Any]], dtype: str) -> Optional[float]:
    """The KV cache vLLM allocated, from its cache config (num_gpu_blocks x block_size) and the architecture."""
    try:
        cc = llm.llm_engine.vllm_config.cache_config
        blocks, size = int(cc.num_gpu_blocks), int(cc.block_size)
        kv_dtype = str(getattr(cc, "cache_dtype", "auto"))
    except Exception:  # noqa: BLE001 - not exposed by this version
        return None
    per_token = kv_bytes_per_token(arch, KV_BYTES.get(kv_dtype if kv_dtype != "auto" else dtype, 2))
    return blocks * size * per_token / 1024 ** 3 if per_token else None


def engine_stats(llm: Any, arch: Optional[dict[str, Any]] = None, dtype: str = "bfloat16") -> Any:
    """run_generation's engine_stats from `LLM.get_metrics()` (V1 engine; filled with disable_log_stats=False):
    prefix-cache query/hit counters and KV-cache usage (a 0..1 gauge, reported in percent)."""
    def stats(phase: str) -> dict[str, Optional[float]]:
        kv = kv_cache_gib(llm, arch, dtype) if phase == "end" else None
        get = getattr(llm, "get_metrics", None)
        if get is None:
            return {"kv_cache_gib": kv}
        try:
            metrics = get()
        except Exception:  # noqa: BLE001 - stats are optional
            return {"kv_cache_gib": kv}
        out: dict[str, Optional[float]] = {"kv_cache_gib": kv}
        for m in metrics:
            key = VLLM_COUNTERS.get(str(getattr(m, "name", "")))
            v = getattr(m, "value", None)
            if key is not None and isinstance(v, (int, float)):
                out[key] = (out.get(key) or 0.0) + float(v) * (100.0 if key == "kv_cache_usage_pct" else 1.0)
        return out
    return stats


def hf_config(llm: Any, arch: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    if arch is not None:
        return arch
    try:
        return dict(llm.llm_engine.model_config.hf_config.to_dict())
    except Exception:  # noqa: BLE001
        return None
