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
import threading
import time
from typing import Any, Optional

from lem_worker.backends import register
from lem_worker.backends.generation import (Generation, PassStats, cuda_sync, decoding_kwargs, run_generation,
                                            tokenize_prompts, tokenizer_ids)
from lem_worker.batching import Request, make_batches
from lem_worker.config import Experiment, WorkerConfig
from lem_worker.backends.tensorrt_engine import (DTYPES, engine_key, engine_kwargs,  # noqa: F401  (re-exported)
                                                 load_engine, release_engine)
from lem_worker.engines import CACHE, note_first_request, release_unless_persistent
from lem_worker.environment import module_version
from lem_worker.errors import Terminated, WorkerError
from lem_worker.log import log
from lem_worker.reasoning import ReasoningCounter, counter_for
from lem_worker.timeutil import utc_now_iso

NOT_INSTALLED = ("tensorrt_llm is not installed in this image; use the lem-tensorrt image "
                 "(images/tensorrt/Dockerfile, `lem images build tensorrt`)")
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
    harness: Optional[TrtHarness] = None
    try:
        eng, engine = CACHE.acquire(engine_key(exp), lambda: load_engine(trt, llmapi, exp), release=release_engine)
        llm, tokenizer, arch, kwargs, record = eng.llm, eng.tokenizer, eng.arch, eng.kwargs, eng.record
        skip_tokenizer = eng.skip_tokenizer
        load_s: Optional[float] = engine["load_s"]
        notes.extend(eng.notes)
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
        result = run_generation(cfg, stop, gen, started_at, **meter_kwargs)
        note_first_request(engine, result.get("warmup"))
        result["engine"] = engine
        return result
    finally:
        if harness is not None:
            harness.close()
        release_unless_persistent()  # a per-run worker shuts the executor down now; a persistent one keeps it
