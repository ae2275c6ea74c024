"""The typed engine parameters of the backend sections (src/config/sections/*.ts) that config.py does not
parse, read from the raw experiment and turned into the engines' own arguments, plus `extra.engine_args`
(anything else, passed through untouched). A key set both ways is a ConfigError: the typed field wins
nowhere silently.

vLLM: EngineArgs names, passed to `vllm.LLM(...)` (docs.vllm.ai "Engine Arguments"); `compilation_level`
becomes `compilation_config={"level": n}`. TensorRT-LLM: LLM-API `LlmArgs` (`pipeline_parallel_size`,
`enable_chunked_prefill`, `kv_cache_config=KvCacheConfig(...)`, `cuda_graph_config=CudaGraphConfig()` or
None, `scheduler_config=SchedulerConfig(capacity_scheduler_policy=...)`). transformers: `generate()`
arguments (`use_cache`, `num_beams`, `prompt_lookup_num_tokens`).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from lem_worker.config import Experiment
from lem_worker.errors import ConfigError

VLLM_PASSTHROUGH = ("pipeline_parallel_size", "data_parallel_size", "max_num_batched_tokens", "kv_cache_dtype",
                    "block_size", "enable_chunked_prefill", "cpu_offload_gb", "swap_space", "speculative_config",
                    "async_scheduling")
PYTORCH_GENERATE = ("use_cache", "num_beams", "prompt_lookup_num_tokens")


def section(exp: Experiment, name: str) -> Mapping[str, Any]:
    raw = exp.raw.get(name) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"experiment.{name}: expected an object")
    return raw


def passthrough(exp: Experiment, already: Mapping[str, Any]) -> dict[str, Any]:
    """extra.engine_args: engine arguments lem does not type; one that a typed field already sets is an error."""
    ea = exp.extra.get("engine_args") or {}
    if not isinstance(ea, dict):
        raise ConfigError("experiment.extra.engine_args: expected an object of engine arguments")
    clash = sorted(set(ea) & set(already))
    if clash:
        raise ConfigError(f"experiment.extra.engine_args: {', '.join(clash)} is set by a typed field; set it there")
    return dict(ea)


def vllm_extra(exp: Experiment) -> dict[str, Any]:
    """The vLLM engine arguments of the typed fields config.py's VllmCfg does not carry."""
    raw = section(exp, "vllm")
    kw = {k: raw[k] for k in VLLM_PASSTHROUGH if raw.get(k) is not None}
    if raw.get("compilation_level") is not None:
        kw["compilation_config"] = {"level": int(raw["compilation_level"])}
    return kw


def trt_extra(exp: Experiment, llmapi: Any, record: dict[str, Any]) -> dict[str, Any]:
    """TensorRT-LLM `LLM(...)` arguments of the typed fields beyond tp_size / batch limits; `record` gets the
    same with config objects as plain dicts."""
    raw = section(exp, "tensorrt")
    kw: dict[str, Any] = {}
    if raw.get("pp_size") is not None:
        kw["pipeline_parallel_size"] = record["pipeline_parallel_size"] = int(raw["pp_size"])
    if raw.get("enable_chunked_prefill") is not None:
        kw["enable_chunked_prefill"] = record["enable_chunked_prefill"] = bool(raw["enable_chunked_prefill"])
    kv = dict(raw.get("kv_cache") or {})
    if raw.get("kv_cache_free_gpu_memory_fraction") is not None:
        kv.setdefault("free_gpu_memory_fraction", raw["kv_cache_free_gpu_memory_fraction"])
    if kv:
        kw["kv_cache_config"] = llmapi.KvCacheConfig(**kv)
        record["kv_cache_config"] = kv
    cg = raw.get("cuda_graphs")
    if cg is not None:
        kw["cuda_graph_config"] = llmapi.CudaGraphConfig() if cg else None
        record["cuda_graph_config"] = {} if cg else None
    pol = raw.get("scheduler_policy")
    if pol is not None:
        policy = getattr(llmapi.CapacitySchedulerPolicy, str(pol).upper())
        kw["scheduler_config"] = llmapi.SchedulerConfig(capacity_scheduler_policy=policy)
        record["scheduler_config"] = {"capacity_scheduler_policy": str(pol).upper()}
    return kw


def trt_max_seq_len(exp: Experiment) -> Optional[int]:
    v = section(exp, "tensorrt").get("max_seq_len")
    return int(v) if v is not None else None


def pytorch_generate_extra(exp: Experiment) -> dict[str, Any]:
    """transformers generate() arguments of the typed pytorch fields (assistant_model is loaded by the loader)."""
    raw = section(exp, "pytorch")
    return {k: raw[k] for k in PYTORCH_GENERATE if raw.get(k) is not None}
