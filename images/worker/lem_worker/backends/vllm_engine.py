"""Loading and releasing vLLM's offline engine (`vllm.LLM`) for the vllm backend (vllm.py): the engine the cache
(engines.py) keeps between runs of a persistent worker, and the release it calls when the engine leaves it."""
from __future__ import annotations

import gc
import shutil
from dataclasses import dataclass, field
from typing import Any, Optional

from lem_worker.backends.loader import tokenizer_or_stand_in, write_architecture_dir
from lem_worker.backends.vllm_args import engine_kwargs, quantization_arg
from lem_worker.config import Experiment
from lem_worker.engines import is_out_of_memory
from lem_worker.errors import WorkerError
from lem_worker.log import log


@dataclass
class VllmEngine:
    """A loaded `vllm.LLM` with what its runs need, kept in the engine cache (engines.py) between runs."""

    llm: Any
    tokenizer: Any
    arch: Optional[dict[str, Any]]
    kwargs: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    tmpdir: Optional[str] = None


def load_engine(vllm: Any, exp: Experiment) -> VllmEngine:
    assert exp.model is not None
    m = exp.model
    notes: list[str] = []
    tmpdir: Optional[str] = None
    try:
        model_path = m.id
        arch: Optional[dict[str, Any]] = None
        tokenizer: Any = None
        if m.no_weights and m.architecture:
            arch, tmpdir = write_architecture_dir(m.architecture, "lem-vllm-arch-")
            model_path = tmpdir
        skip_tokenizer = False
        if m.no_weights:
            tokenizer, skip_tokenizer = tokenizer_or_stand_in(m.id, m.revision, m.trust_remote_code, notes)
        kwargs = engine_kwargs(exp, model_path, own_tokenizer=arch is not None and not skip_tokenizer,
                               skip_tokenizer=skip_tokenizer)
        log(f"vllm: LLM({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})")
        try:
            llm = vllm.LLM(**kwargs)
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001
            if is_out_of_memory(exc):
                raise
            raise WorkerError(f"vllm.LLM could not start the engine for {m.id}: {type(exc).__name__}: {exc}") from None
    except BaseException:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    if tokenizer is None:
        tokenizer = llm.get_tokenizer()
    if m.no_weights:
        src = f"shipped architecture {m.architecture}" if arch is not None else f"{m.id} config.json"
        notes.append(f"model.no_weights: vLLM load_format='dummy' (random weights) from {src}; EOS ignored (fixed output length)")
    if quantization_arg(exp) == "fp8" and exp.quantization != "fp8":
        notes.append("precision fp8: vLLM quantization='fp8' (weights quantized to FP8 at load), activations bfloat16")
    elif exp.quantization in ("awq", "gptq"):
        notes.append(f"quantization.method {exp.quantization}: the checkpoint must already be {exp.quantization}-quantized")
    return VllmEngine(llm, tokenizer, arch, kwargs, notes, tmpdir)


def release_engine(eng: VllmEngine) -> None:
    """Gives a cached engine's GPU memory back before another loads (or on OOM), as vLLM's maintainers describe
    it (vllm-project/vllm issues 1908, 6544, 18806, 23793): shut the V1 engine core down (its worker processes
    hold the KV cache and weights), drop every reference to the `LLM`, then
    `vllm.distributed.parallel_state.cleanup_dist_env_and_memory()` (destroys the model-parallel groups and the
    torch.distributed process group, gc, torch.cuda.empty_cache); releases without it get the same calls one
    by one. The engine cache then runs gc and empty_cache once more."""
    llm, eng.llm = eng.llm, None
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    shutdown = getattr(core, "shutdown", None)
    if callable(shutdown):
        try:
            shutdown()
        except Exception as exc:  # noqa: BLE001 - release is best effort; the cache still drops the engine
            log(f"vllm: engine core shutdown failed: {type(exc).__name__}: {exc}")
    del llm, core, shutdown
    gc.collect()
    try:
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()
    except ImportError:
        _cleanup_by_hand()
    except Exception as exc:  # noqa: BLE001
        log(f"vllm: cleanup_dist_env_and_memory failed: {type(exc).__name__}: {exc}")
    if eng.tmpdir is not None:
        shutil.rmtree(eng.tmpdir, ignore_errors=True)
        eng.tmpdir = None


def _cleanup_by_hand() -> None:
    try:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel
    except ImportError:
        return  # not a vllm with parallel state (or a fake): gc and empty_cache follow in the cache
    try:
        destroy_model_parallel()
        destroy_distributed_environment()
    except Exception as exc:  # noqa: BLE001
        log(f"vllm: destroying the parallel state failed: {type(exc).__name__}: {exc}")
