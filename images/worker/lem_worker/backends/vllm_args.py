"""vLLM's Engine Arguments for an experiment: what the offline `vllm.LLM(...)` (backends/vllm.py) and `vllm
serve` (serving/manage.py) both get, and the engine-cache key that says when a loaded engine can be reused.
Its own module so that the offline backend and the server manager do not import each other."""
from __future__ import annotations

from typing import Any, Optional

from lem_worker.config import Experiment
from lem_worker.engine_args import passthrough, vllm_extra
from lem_worker.errors import ConfigError

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp8": "bfloat16"}


def quantization_arg(exp: Experiment) -> Optional[str]:
    """vLLM's `quantization` engine argument: fp8 (precision or method) quantizes at load; awq/gptq read a
    pre-quantized checkpoint."""
    q = exp.quantization
    if exp.precision == "fp8" or q == "fp8":
        return "fp8"
    if q in ("awq", "gptq"):
        return q
    if q != "none":
        raise ConfigError(f"experiment.quantization.method: {q} is not available on the vllm backend")
    return None


def engine_kwargs(exp: Experiment, model_path: str, own_tokenizer: bool, skip_tokenizer: bool) -> dict[str, Any]:
    """Arguments for `vllm.LLM(...)` (Engine Arguments)."""
    assert exp.model is not None
    m = exp.model
    v = exp.vllm
    kw: dict[str, Any] = {
        "model": model_path,
        "dtype": DTYPES[exp.precision],
        "tensor_parallel_size": v.tensor_parallel_size,
        "gpu_memory_utilization": v.gpu_memory_utilization,
        "enforce_eager": v.enforce_eager,
        "trust_remote_code": m.trust_remote_code,
        "seed": exp.prompts.seed,
        "disable_log_stats": False,  # V1 engines fill RequestOutput.metrics only with stats enabled
    }
    if m.revision and model_path == m.id:
        kw["revision"] = m.revision
    if own_tokenizer:  # config written locally (architecture): the tokenizer still comes from the model id
        kw["tokenizer"] = m.id
        if m.revision:
            kw["tokenizer_revision"] = m.revision
    if skip_tokenizer:
        kw["skip_tokenizer_init"] = True
    q = quantization_arg(exp)
    if q is not None:
        kw["quantization"] = q
    if v.max_num_seqs is not None:
        kw["max_num_seqs"] = v.max_num_seqs
    if v.max_model_len is not None:
        kw["max_model_len"] = v.max_model_len
    if v.enable_prefix_caching is not None:
        kw["enable_prefix_caching"] = v.enable_prefix_caching
    if m.no_weights:
        kw["load_format"] = "dummy"
    kw.update(vllm_extra(exp))
    kw.update(passthrough(exp, kw))
    return kw


def engine_key(exp: Experiment) -> dict[str, Any]:
    """What identifies a loaded vLLM engine (the fields of src/config/engine-key.ts ENGINE_FIELDS.vllm): backend,
    model (id, revision, weights, architecture), precision, quantisation, the vllm section's typed engine
    arguments, extra.engine_args and the GPUs. Batch size, decoder, prompts and measurement settings do not
    force a reload."""
    raw = exp.raw
    return {"backend": "vllm", "model": raw.get("model"), "precision": exp.precision, "quantization": exp.quantization,
            "engine": raw.get("vllm"), "engine_args": exp.extra.get("engine_args"),
            "gpu_ids": (raw.get("measurement") or {}).get("gpu_ids"),
            "seed": exp.prompts.seed}  # engine_kwargs passes it as the engine's seed
