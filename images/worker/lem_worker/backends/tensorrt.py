"""The TensorRT-LLM backend: TensorRT-LLM's LLM API measured by the shared generation flow.

Written against TensorRT-LLM's documented LLM API (nvidia.github.io/TensorRT-LLM: "LLM API" / API
Reference for `tensorrt_llm.llmapi.LLM`, `SamplingParams`, `RequestOutput`, `BuildConfig`,
`KvCacheConfig`, `QuantConfig`/`QuantAlgo`, and the "Generate text in streaming" example); the
lem-tensorrt image pins the release container of images/versions.env (1.x). Calls it relies on:

* `tensorrt_llm.LLM(model=..., tokenizer, skip_tokenizer_init, trust_remote_code,
  tensor_parallel_size, pipeline_parallel_size, dtype, revision, max_batch_size, max_num_tokens,
  max_seq_len (1.x PyTorch flow, detected by `llmapi.TorchLlmArgs`; 0.x: the same three in
  build_config=BuildConfig(...)), kv_cache_config=KvCacheConfig(free_gpu_memory_fraction,
  enable_block_reuse, max_tokens, dtype), cuda_graph_config=CudaGraphConfig() | None,
  scheduler_config=SchedulerConfig(capacity_scheduler_policy), enable_chunked_prefill, quant_config=
  QuantConfig(quant_algo=QuantAlgo.FP8), load_format="dummy")`. `model` is a Hugging Face id or
  path, or `tensorrt.engine_dir` (a prebuilt engine: no build arguments are passed then).
  model.no_weights uses `load_format="dummy"` (random weights; a version-dependent LLM argument,
  refused by releases without it); with model.architecture the shipped config is written as
  config.json in a temporary directory and passed as `model`.
* `LLM.tokenizer`: tokenizes the prompt set once, outside every window; prompts then go in as
  token-id lists, which `generate`/`generate_async` accept as inputs.
* `LLM.generate_async(token_ids, sampling_params, streaming=True)`: an async iterator of
  `RequestOutput`s whose `outputs[0].token_ids` holds the tokens generated so far; all requests of a
  batch are submitted together on one event loop. The streamed updates time TTFT and ITL inside the
  single generation of each request (nothing is generated twice); the final update's token ids are
  the output token count and `prompt_token_ids` the input count.
* `SamplingParams(max_tokens, min_tokens, ignore_eos, temperature, top_p, top_k,
  repetition_penalty, end_id, pad_id, detokenize)`: no sampling knobs = greedy; fixed-length decoding
  sets min_tokens = max_tokens and ignore_eos.
"""
from __future__ import annotations

import asyncio
import shutil
import threading
import time
from typing import Any, Optional

from lem_worker.backends import register
from lem_worker.backends.generation import (Generation, PassStats, cuda_sync, decoding_kwargs, run_generation,
                                            tokenize_prompts, tokenizer_ids)
from lem_worker.backends.loader import tokenizer_or_stand_in, write_architecture_dir
from lem_worker.batching import Request, make_batches
from lem_worker.config import Experiment, WorkerConfig
from lem_worker.engine_args import passthrough, trt_extra, trt_max_seq_len
from lem_worker.environment import module_version
from lem_worker.errors import ConfigError, Terminated, WorkerError
from lem_worker.log import log
from lem_worker.reasoning import ReasoningCounter, counter_for
from lem_worker.timeutil import utc_now_iso

NOT_INSTALLED = ("tensorrt_llm is not installed in this image; use the lem-tensorrt image "
                 "(images/tensorrt/Dockerfile, `lem images build tensorrt`)")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp8": "bfloat16"}
STEP_NOTE = ("TTFT = first streamed update carrying a token, from the batch's submission; ITL percentiles over the "
             "gaps between a request's streamed updates (one update per decoding step unless the engine batches updates)")


def import_tensorrt_llm() -> Any:
    try:
        import tensorrt_llm
    except ImportError as exc:
        raise WorkerError(f"{NOT_INSTALLED} (import tensorrt_llm: {exc})") from None
    return tensorrt_llm


def _llmapi(trt: Any) -> Any:
    try:
        import tensorrt_llm.llmapi as llmapi
    except ImportError:
        llmapi = getattr(trt, "llmapi", None)
        if llmapi is None:
            raise WorkerError("tensorrt_llm.llmapi is missing: this TensorRT-LLM release has no LLM API") from None
    return llmapi


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


def sampling_kwargs(exp: Experiment, max_tokens: int, fixed: bool, end_id: Optional[int],
                    pad_id: Optional[int]) -> dict[str, Any]:
    """Arguments for `tensorrt_llm.SamplingParams(...)`; greedy passes no sampling parameters (the
    documented default is greedy decoding)."""
    kw: dict[str, Any] = {"detokenize": False}
    if end_id is not None:
        kw["end_id"] = end_id
    if pad_id is not None:
        kw["pad_id"] = pad_id
    kw.update(decoding_kwargs(exp, max_tokens, fixed))
    return kw


class TrtHarness:
    def __init__(self, llm: Any, trt: Any, exp: Experiment, batches: list[list[Request]], fixed: bool,
                 end_id: Optional[int], pad_id: Optional[int], sync: Any) -> None:
        self.llm = llm
        self.batches = batches
        self.sync = sync
        self.kwargs_full = sampling_kwargs(exp, exp.max_output_tokens, fixed, end_id, pad_id)
        self.kwargs_prefill = sampling_kwargs(exp, 1, fixed, end_id, pad_id)
        self.sp_full = trt.SamplingParams(**self.kwargs_full)
        self.sp_prefill = trt.SamplingParams(**self.kwargs_prefill)
        self.loop = asyncio.new_event_loop()
        self.rc: Optional[ReasoningCounter] = None

    async def _one(self, ids: list[int], sp: Any) -> tuple[Any, int, Optional[float], Optional[float], list[float]]:
        n = 0
        first: Optional[float] = None
        prev: Optional[float] = None
        gaps: list[float] = []
        final: Any = None
        async for out in self.llm.generate_async(list(ids), sampling_params=sp, streaming=True):
            now = time.perf_counter()
            k = len(out.outputs[0].token_ids)
            if k > n:
                if first is None:
                    first = now
                elif prev is not None:
                    gaps.append(now - prev)
                prev = now
                n = k
            final = out
        return final, n, first, prev, gaps

    async def _batch(self, batch: list[Request], sp: Any) -> list[Any]:
        return await asyncio.gather(*(self._one(r.input_ids, sp) for r in batch), return_exceptions=True)

    def run_batch(self, batch: list[Request], sp: Any, stats: Optional[PassStats]) -> None:
        t0 = time.perf_counter()
        try:
            results = self.loop.run_until_complete(self._batch(batch, sp))
        except WorkerError:  # Terminated (SIGTERM) or the timeout: not a failed batch
            raise
        except Exception as exc:  # noqa: BLE001 - a failed batch is counted, not fatal
            if stats is not None:
                stats.fail_batch(len(batch), exc)
            return
        self.sync()
        if stats is None:
            return
        for r, res in zip(batch, results):
            if isinstance(res, WorkerError):
                raise res
            if isinstance(res, BaseException):
                stats.fail_batch(1, res)
                continue
            final, n, first, last, gaps = res
            if final is not None:
                n = len(final.outputs[0].token_ids)
                stats.count_reasoning(self.rc, final.outputs[0].token_ids)
            prompt_ids = getattr(final, "prompt_token_ids", None)
            stats.requests += 1
            stats.input_tokens += len(prompt_ids) if prompt_ids is not None else len(r.input_ids)
            stats.output_tokens += n
            stats.latencies.append((last if last is not None else time.perf_counter()) - t0)
            if first is not None:
                stats.ttfts.append(first - t0)
                if n > 1 and last is not None:
                    stats.itls.append((last - first) / (n - 1))
            stats.step_gaps.extend(gaps)

    def run_pass(self, prefill: bool, stop: threading.Event) -> PassStats:
        sp = self.sp_prefill if prefill else self.sp_full
        stats = PassStats()
        for b in self.batches:
            if stop.is_set():
                raise Terminated("stopped during generation")
            self.run_batch(b, sp, stats)
        return stats

    def close(self) -> None:
        self.loop.close()


def _load_error(exc: BaseException, m: Any, kwargs: dict[str, Any]) -> WorkerError:
    msg = f"tensorrt_llm.LLM could not load {m.id}: {type(exc).__name__}: {exc}"
    if "load_format" in kwargs and isinstance(exc, TypeError):
        msg += " (model.no_weights needs a TensorRT-LLM release whose LLM accepts load_format='dummy')"
    return WorkerError(msg)


@register("tensorrt")
def run_tensorrt(cfg: WorkerConfig, stop: threading.Event, **meter_kwargs: Any) -> dict[str, Any]:
    exp = cfg.experiment
    assert exp.model is not None
    m = exp.model
    t = exp.tensorrt
    started_at = utc_now_iso()
    trt = import_tensorrt_llm()
    llmapi = _llmapi(trt)
    notes: list[str] = []
    tmpdir: Optional[str] = None
    harness: Optional[TrtHarness] = None
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
        t_load = time.perf_counter()
        try:
            llm = trt.LLM(**kwargs)
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _load_error(exc, m, kwargs) from None
        load_s = time.perf_counter() - t_load
        if tokenizer is None:
            tokenizer = getattr(llm, "tokenizer", None)
            inner = getattr(tokenizer, "tokenizer", None)  # the LLM API wraps the Hugging Face tokenizer
            if inner is not None and callable(inner):
                tokenizer = inner
            if tokenizer is None:
                raise WorkerError(f"TensorRT-LLM loaded {model_path} without a tokenizer; set model.id to a model "
                                  "whose tokenizer can be loaded")
        if t.engine_dir is not None:
            notes.append(f"prebuilt engine {t.engine_dir}: batch/token limits, dtype and quantization are the engine's own")
            if m.no_weights:
                notes.append("model.no_weights has no effect with a prebuilt engine (its weights are in the engine)")
        elif m.no_weights:
            src = f"shipped architecture {m.architecture}" if arch is not None else f"{m.id} config.json"
            notes.append(f"model.no_weights: load_format='dummy' (random weights) from {src}; EOS ignored (fixed output length)")
        if exp.quantization in ("awq", "gptq"):
            notes.append(f"quantization.method {exp.quantization}: the checkpoint must already be {exp.quantization}-quantized")
        eos_ids, pad_id = tokenizer_ids(tokenizer)
        vocab = (arch or {}).get("vocab_size") or getattr(tokenizer, "vocab_size", None)
        rc = counter_for(tokenizer, m.id, exp.raw.get("reasoning"), notes)
        requests = tokenize_prompts(tokenizer, eos_ids, pad_id, vocab, exp, notes, rc.plan)
        batches = make_batches(requests, exp.batching, exp.max_output_tokens)
        fixed = bool(exp.decoder.fixed_length or m.no_weights)
        sync = cuda_sync()
        end_id = eos_ids[0] if (skip_tokenizer and eos_ids) else None
        harness = TrtHarness(llm, trt, exp, batches, fixed, end_id, pad_id if skip_tokenizer else None, sync)
        harness.rc = rc
        log(f"tensorrt: {len(requests)} request(s) in {len(batches)} batch(es) of up to {exp.batching.batch_size}, "
            f"max_tokens {exp.max_output_tokens}, streaming")
        counter = [0]
        h = harness

        def warm_step() -> None:
            b = batches[counter[0] % len(batches)]
            counter[0] += 1
            h.run_batch(b, h.sp_full, None)

        gen = Generation(
            run_pass=harness.run_pass,
            warm_step=warm_step,
            sync=sync,
            requests_per_pass=len(requests),
            batch_sizes=[len(b) for b in batches],
            load_s=load_s,
            notes=notes,
            library_versions={"tensorrt_llm": str(getattr(trt, "__version__", "unknown")),
                              "torch": module_version("torch"), "transformers": module_version("transformers"),
                              "numpy": module_version("numpy")},
            model_info={"model_id": m.id, "revision": m.revision, "no_weights": m.no_weights,
                        "architecture": m.architecture, "dtype": kwargs["dtype"], "engine_dir": t.engine_dir,
                        "quantization": "fp8" if "quant_config" in kwargs else exp.quantization,
                        "tensor_parallel_size": t.tp_size, "load_format": kwargs.get("load_format", "auto")},
            generate_kwargs=harness.kwargs_full,
            reasoning=rc,
            arch_config=arch,
            fixed_length=fixed,
            gpu_ids=list(range(t.tp_size)),
            gpu_note=f"measuring the GPU(s) TensorRT-LLM runs on: CUDA device(s) {list(range(t.tp_size))} (tp_size {t.tp_size})",
            timing_note=("request latency = time from the batch's submission (all its requests through generate_async, "
                         "streaming) to the request's last streamed token; " + STEP_NOTE),
            reasons={"ttft": "no request streamed a token", "itl": "needs requests with at least 2 output tokens",
                     "itl_steps": "needs requests with at least 2 streamed updates"},
            workload_extra={"engine": "tensorrt_llm",
                            "engine_kwargs": {k: v for k, v in record.items() if k != "model" or v in (m.id, t.engine_dir)},
                            "prefill_sampling_params": harness.kwargs_prefill, "streaming": True},
        )
        notes.append("prompts passed to TensorRT-LLM as token ids; SamplingParams(detokenize=False): outputs are "
                     "counted from the streamed RequestOutput token ids, never decoded")
        return run_generation(cfg, stop, gen, started_at, **meter_kwargs)
    finally:
        if harness is not None:
            harness.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
