"""Loading and releasing a TensorRT-LLM engine (`tensorrt_llm.LLM`) for the tensorrt backend (tensorrt.py): its
LLM arguments, the engine-cache key, and the release the cache calls when the engine leaves it (engines.py)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any, Optional

from lem_worker.backends.loader import tokenizer_or_stand_in, write_architecture_dir
from lem_worker.config import Experiment
from lem_worker.engine_args import passthrough, trt_extra, trt_max_seq_len
from lem_worker.engines import is_out_of_memory
from lem_worker.errors import ConfigError, WorkerError
from lem_worker.log import log

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp8": "bfloat16"}


def engine_kwargs(exp: Experiment, llmapi: Any, model_path: str, own_tokenizer: bool,
                  skip_tokenizer: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(arguments for `tensorrt_llm.LLM(...)`, the same with config objects as plain dicts for the record)."""
    assert exp.model is not None
    m = exp.model
    t = exp.tensorrt
    kw: dict[str, Any] = {
        "model": model_path,
        "tensor_parallel_size": t.tp_size,
        "dtype": DTYPES[exp.precision],
        "trust_remote_code": m.trust_remote_code,
    }
    record: dict[str, Any] = {}
    if m.revision and model_path == m.id:
        kw["revision"] = m.revision
    if own_tokenizer:  # engine dir / local config: the tokenizer still comes from the model id
        kw["tokenizer"] = m.id
    if skip_tokenizer:
        kw["skip_tokenizer_init"] = True
    q = exp.quantization
    fp8 = exp.precision == "fp8" or q == "fp8"
    if q not in ("none", "fp8", "awq", "gptq"):
        raise ConfigError(f"experiment.quantization.method: {q} is not available on the tensorrt backend")
    if t.engine_dir is None:
        build = {"max_seq_len": trt_max_seq_len(exp) or exp.max_input_tokens + exp.max_output_tokens}
        if t.max_batch_size is not None:
            build["max_batch_size"] = t.max_batch_size
        if t.max_num_tokens is not None:
            build["max_num_tokens"] = t.max_num_tokens
        if hasattr(llmapi, "TorchLlmArgs"):  # 1.x, PyTorch flow (the LLM default): scheduler limits are LLM arguments
            kw.update(build)
        else:  # 0.x TensorRT engine flow: they are engine build settings
            kw["build_config"] = llmapi.BuildConfig(**build)
            record["build_config"] = build
        if fp8:
            kw["quant_config"] = llmapi.QuantConfig(quant_algo=llmapi.QuantAlgo.FP8)
            record["quant_config"] = {"quant_algo": "FP8"}
        if m.no_weights:
            kw["load_format"] = "dummy"
    kw.update(trt_extra(exp, llmapi, record))
    extra = passthrough(exp, kw)
    kw.update(extra)
    record.update(extra)
    for k, v in kw.items():
        if k not in record:
            record[k] = v
    return kw, record


def _load_error(exc: BaseException, m: Any, kwargs: dict[str, Any]) -> WorkerError:
    msg = f"tensorrt_llm.LLM could not load {m.id}: {type(exc).__name__}: {exc}"
    if "load_format" in kwargs and isinstance(exc, TypeError):
        msg += " (model.no_weights needs a TensorRT-LLM release whose LLM accepts load_format='dummy')"
    return WorkerError(msg)


def engine_key(exp: Experiment) -> dict[str, Any]:
    """What identifies a loaded TensorRT-LLM engine (src/config/engine-key.ts ENGINE_FIELDS.tensorrt): backend,
    model, precision, quantisation, the tensorrt section, extra.engine_args, the GPUs, and max_seq_len (an LLM
    argument that follows the token limits unless set)."""
    raw = exp.raw
    return {"backend": "tensorrt", "model": raw.get("model"), "precision": exp.precision,
            "quantization": exp.quantization, "engine": raw.get("tensorrt"), "engine_args": exp.extra.get("engine_args"),
            "gpu_ids": (raw.get("measurement") or {}).get("gpu_ids"),
            "max_seq_len": trt_max_seq_len(exp) or exp.max_input_tokens + exp.max_output_tokens}


@dataclass
class TrtEngine:
    """A loaded `tensorrt_llm.LLM` with what its runs need, kept in the engine cache between runs."""

    llm: Any
    tokenizer: Any
    arch: Optional[dict[str, Any]]
    kwargs: dict[str, Any]
    record: dict[str, Any]
    skip_tokenizer: bool
    notes: list[str] = field(default_factory=list)
    tmpdir: Optional[str] = None


def load_engine(trt: Any, llmapi: Any, exp: Experiment) -> TrtEngine:
    assert exp.model is not None
    m = exp.model
    t = exp.tensorrt
    notes: list[str] = []
    tmpdir: Optional[str] = None
    try:
        model_path = t.engine_dir or m.id
        arch: Optional[dict[str, Any]] = None
        if t.engine_dir is None and m.no_weights and m.architecture:
            arch, tmpdir = write_architecture_dir(m.architecture, "lem-trt-arch-")
            model_path = tmpdir
        tokenizer: Any = None
        skip_tokenizer = False
        if m.no_weights:
            tokenizer, skip_tokenizer = tokenizer_or_stand_in(m.id, m.revision, m.trust_remote_code, notes)
        kwargs, record = engine_kwargs(exp, llmapi, model_path, own_tokenizer=model_path != m.id and not skip_tokenizer,
                                       skip_tokenizer=skip_tokenizer)
        log(f"tensorrt: LLM({', '.join(f'{k}={v!r}' for k, v in record.items())})")
        try:
            llm = trt.LLM(**kwargs)
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001
            if is_out_of_memory(exc):
                raise
            raise _load_error(exc, m, kwargs) from None
    except BaseException:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    eng = TrtEngine(llm, tokenizer, arch, kwargs, record, skip_tokenizer, notes, tmpdir)
    try:
        if tokenizer is None:
            tokenizer = getattr(llm, "tokenizer", None)
            inner = getattr(tokenizer, "tokenizer", None)  # the LLM API wraps the Hugging Face tokenizer
            if inner is not None and callable(inner):
                tokenizer = inner
            if tokenizer is None:
                raise WorkerError(f"TensorRT-LLM loaded {model_path} without a tokenizer; set model.id to a model "
                                  "whose tokenizer can be loaded")
            eng.tokenizer = tokenizer
    except BaseException:
        release_engine(eng)
        raise
    if t.engine_dir is not None:
        notes.append(f"prebuilt engine {t.engine_dir}: batch/token limits, dtype and quantization are the engine's own")
        if m.no_weights:
            notes.append("model.no_weights has no effect with a prebuilt engine (its weights are in the engine)")
    elif m.no_weights:
        src = f"shipped architecture {m.architecture}" if arch is not None else f"{m.id} config.json"
        notes.append(f"model.no_weights: load_format='dummy' (random weights) from {src}; EOS ignored (fixed output length)")
    if exp.quantization in ("awq", "gptq"):
        notes.append(f"quantization.method {exp.quantization}: the checkpoint must already be {exp.quantization}-quantized")
    return eng


def release_engine(eng: TrtEngine) -> None:
    """Gives a cached engine's GPU memory back: `LLM.shutdown()` (TensorRT-LLM's LLM API: it stops the executor
    and its worker processes, as leaving `with LLM(...) as llm:` does), then drops the reference; the engine
    cache runs gc and torch.cuda.empty_cache."""
    llm, eng.llm = eng.llm, None
    shutdown = getattr(llm, "shutdown", None)
    if callable(shutdown):
        try:
            shutdown()
        except Exception as exc:  # noqa: BLE001 - release is best effort; the cache still drops the engine
            log(f"tensorrt: LLM.shutdown failed: {type(exc).__name__}: {exc}")
    del llm, shutdown
    if eng.tmpdir is not None:
        shutil.rmtree(eng.tmpdir, ignore_errors=True)
        eng.tmpdir = None
