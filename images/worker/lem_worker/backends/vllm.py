"""The vLLM backend: vLLM's offline engine (`vllm.LLM`) measured by the shared generation flow, or, with
a `traffic:` section, fed request by request at seeded arrival times (vllm_traffic.py).

Written against vLLM's documented offline API (docs.vllm.ai: "Offline Inference" / the `LLM` class
and Engine Arguments, `SamplingParams`, `vllm.outputs.RequestOutput`); the lem-vllm image pins the
vllm/vllm-openai release of images/versions.env (0.3x: the V1 engine only). Calls it relies on:

* `LLM(model=..., dtype, quantization, tensor_parallel_size, gpu_memory_utilization, max_num_seqs,
  max_model_len, enforce_eager, enable_prefix_caching, load_format, seed, revision, tokenizer,
  skip_tokenizer_init, trust_remote_code, disable_log_stats, and the typed fields of engine_args.py:
  pipeline/data parallel, max_num_batched_tokens, kv_cache_dtype, block_size, chunked prefill,
  cpu_offload_gb, swap_space, speculative_config, async_scheduling, compilation_config)`: Engine
  Arguments passed through the LLM constructor. `load_format="dummy"` (random weights, "mainly for profiling") is how
  model.no_weights runs; with model.architecture the shipped config is written as config.json in
  a temporary directory and passed as `model`.
* `LLM.get_tokenizer()`: the engine's tokenizer, used to tokenize the prompt set once, outside
  every window; prompts then go in as token ids (`TokensPrompt`, i.e. `{"prompt_token_ids": [...]}`),
  so nothing is re-tokenized inside a measured window.
* `LLM.generate(prompts, sampling_params, use_tqdm=False)` -> list of `RequestOutput`, one per
  prompt in input order: `outputs[0].token_ids` (generated ids: the output token count),
  `prompt_token_ids` (the input token count) and `metrics`.
* `SamplingParams(n, max_tokens, min_tokens, ignore_eos, temperature, top_p, top_k,
  repetition_penalty, detokenize)`: temperature 0 is greedy; fixed-length decoding sets
  min_tokens = max_tokens and ignore_eos.

Timing: `RequestOutput.metrics` is version-dependent. The V0 engine (vLLM <= 0.10, the pinned
image) documents `RequestMetrics` with wall-clock `arrival_time`, `first_token_time`,
`last_token_time`; later V1 versions document `RequestStateStats` (`arrival_time`,
`first_token_latency`, engine-core `first_token_ts` / `last_token_ts`) and fill it only when stats
are enabled (`disable_log_stats=False`, passed here). Both shapes are read; where neither is
present TTFT and ITL are null with the reason (they are never estimated, and nothing is generated
twice). vLLM exposes no per-step token timestamps offline, so the per-step ITL percentiles are null.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Optional

from lem_worker.backends import register
from lem_worker.backends.generation import (Generation, PassStats, cuda_sync, decoding_kwargs, run_generation,
                                            tokenize_prompts, tokenizer_ids)
from lem_worker.backends.vllm_stats import engine_stats, hf_config, request_timing  # noqa: F401  (request_timing re-exported)
from lem_worker.batching import Request, make_batches
from lem_worker.config import Experiment, WorkerConfig
from lem_worker.backends.vllm_args import DTYPES, engine_key, engine_kwargs  # noqa: F401  (re-exported)
from lem_worker.backends.vllm_engine import load_engine, release_engine
from lem_worker.engines import CACHE, note_first_request, release_unless_persistent
from lem_worker.environment import module_version
from lem_worker.errors import Terminated, WorkerError
from lem_worker.log import log
from lem_worker.reasoning import ReasoningCounter, counter_for
from lem_worker.timeutil import utc_now_iso

NOT_INSTALLED = ("vllm is not installed in this image; use the lem-vllm image "
                 "(images/vllm/Dockerfile, `lem images build vllm`)")
NO_METRICS = ("vLLM returned no per-request timing (RequestOutput.metrics is None in this vLLM version/engine); "
              "TTFT/ITL are not estimated")
NO_STEP_TIMES = ("vLLM's offline API exposes first/last token times per request, not per decoding step; "
                 "see itl_mean_s (per request)")


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise WorkerError(f"{NOT_INSTALLED} (import vllm: {exc})") from None
    return vllm


def sampling_kwargs(exp: Experiment, max_tokens: int, fixed: bool) -> dict[str, Any]:
    """Arguments for `vllm.SamplingParams(...)`; greedy is temperature 0 in vLLM."""
    kw: dict[str, Any] = {"n": 1, "detokenize": False, **decoding_kwargs(exp, max_tokens, fixed)}
    if not exp.decoder.do_sample:
        kw["temperature"] = 0.0
    return kw


class VllmHarness:
    def __init__(self, llm: Any, vllm: Any, exp: Experiment, batches: list[list[Request]], fixed: bool,
                 sync: Any) -> None:
        self.llm = llm
        self.exp = exp
        self.batches = batches
        self.sync = sync
        self.kwargs_full = sampling_kwargs(exp, exp.max_output_tokens, fixed)
        self.kwargs_prefill = sampling_kwargs(exp, 1, fixed)
        self.sp_full = vllm.SamplingParams(**self.kwargs_full)
        self.sp_prefill = vllm.SamplingParams(**self.kwargs_prefill)
        self.with_metrics = 0
        self.without_metrics = 0
        self.rc: Optional[ReasoningCounter] = None

    def run_batch(self, batch: list[Request], sp: Any, stats: Optional[PassStats]) -> None:
        prompts = [{"prompt_token_ids": list(r.input_ids)} for r in batch]  # TokensPrompt
        t0_wall = time.time()
        t0 = time.perf_counter()
        try:
            outs = self.llm.generate(prompts, sp, use_tqdm=False)
        except WorkerError:  # Terminated (SIGTERM) or the timeout: not a failed batch
            raise
        except Exception as exc:  # noqa: BLE001 - a failed batch is counted, not fatal
            if stats is not None:
                stats.fail_batch(len(batch), exc)
            return
        self.sync()
        batch_s = time.perf_counter() - t0
        if stats is None:
            return
        if len(outs) != len(batch):
            stats.fail_batch(len(batch), RuntimeError(f"vLLM returned {len(outs)} outputs for {len(batch)} prompts"))
            return
        for r, out in zip(batch, outs):
            n = len(out.outputs[0].token_ids)
            prompt_ids = getattr(out, "prompt_token_ids", None)
            stats.requests += 1
            stats.input_tokens += len(prompt_ids) if prompt_ids is not None else len(r.input_ids)
            stats.output_tokens += n
            stats.count_reasoning(self.rc, out.outputs[0].token_ids)
            timing = request_timing(getattr(out, "metrics", None), t0_wall, n)
            if timing is None:
                self.without_metrics += 1
                stats.latencies.append(batch_s)
                continue
            self.with_metrics += 1
            ttft, latency, itl = timing
            stats.ttfts.append(ttft)
            stats.latencies.append(latency)
            if itl is not None:
                stats.itls.append(itl)

    def run_pass(self, prefill: bool, stop: threading.Event) -> PassStats:
        sp = self.sp_prefill if prefill else self.sp_full
        stats = PassStats()
        for b in self.batches:
            if stop.is_set():
                raise Terminated("stopped during generation")
            self.run_batch(b, sp, stats)
        return stats


@register("vllm")
def run_vllm(cfg: WorkerConfig, stop: threading.Event, **meter_kwargs: Any) -> dict[str, Any]:
    exp = cfg.experiment
    assert exp.model is not None
    from lem_worker.serving.settings import serving_cfg

    if serving_cfg(exp) is not None:  # vllm.endpoint or vllm.mode: server: measured over HTTP
        from lem_worker.serving.run import run_serving

        CACHE.clear()  # an offline engine this worker keeps would hold the GPU memory the server needs

        return run_serving(cfg, stop, **meter_kwargs)
    m = exp.model
    started_at = utc_now_iso()
    vllm = import_vllm()
    notes: list[str] = []
    from lem_worker.serving.manage import stop_managed_servers

    stop_managed_servers(notes)
    try:
        eng, engine = CACHE.acquire(engine_key(exp), lambda: load_engine(vllm, exp), release=release_engine)
        llm, tokenizer, arch, kwargs = eng.llm, eng.tokenizer, eng.arch, eng.kwargs
        load_s: Optional[float] = engine["load_s"]
        notes.extend(eng.notes)
        eos_ids, pad_id = tokenizer_ids(tokenizer)
        vocab = (arch or {}).get("vocab_size") or getattr(tokenizer, "vocab_size", None)
        rc = counter_for(tokenizer, m.id, exp.raw.get("reasoning"), notes)
        requests = tokenize_prompts(tokenizer, eos_ids, pad_id, vocab, exp, notes, rc.plan)
        batches = make_batches(requests, exp.batching, exp.max_output_tokens)
        fixed = bool(exp.decoder.fixed_length or m.no_weights)
        sync = cuda_sync()
        harness = VllmHarness(llm, vllm, exp, batches, fixed, sync)
        harness.rc = rc
        versions = {"vllm": str(getattr(vllm, "__version__", "unknown")), "torch": module_version("torch"),
                    "transformers": module_version("transformers"), "numpy": module_version("numpy")}
        if exp.raw.get("traffic") is not None:  # per-request submission at seeded arrival times (vllm_traffic.py)
            from lem_worker.backends.vllm_traffic import run_engine_traffic

            return run_engine_traffic(cfg, stop, llm, harness.sp_full, requests, harness.kwargs_full, versions,
                                      notes, started_at, **meter_kwargs)
        log(f"vllm: {len(requests)} request(s) in {len(batches)} generate() call(s) of up to "
            f"{exp.batching.batch_size}, max_tokens {exp.max_output_tokens}")
        counter = [0]

        def warm_step() -> None:
            b = batches[counter[0] % len(batches)]
            counter[0] += 1
            harness.run_batch(b, harness.sp_full, None)

        tp = exp.vllm.tensor_parallel_size
        gen = Generation(
            run_pass=harness.run_pass,
            warm_step=warm_step,
            sync=sync,
            requests_per_pass=len(requests),
            batch_sizes=[len(b) for b in batches],
            load_s=load_s,
            notes=notes,
            library_versions=versions,
            model_info={"model_id": m.id, "revision": m.revision, "no_weights": m.no_weights,
                        "architecture": m.architecture, "dtype": kwargs["dtype"],
                        "quantization": kwargs.get("quantization"), "tensor_parallel_size": tp,
                        "load_format": kwargs.get("load_format", "auto")},
            generate_kwargs=harness.kwargs_full,
            reasoning=rc,
            engine_stats=engine_stats(llm, hf_config(llm, arch), kwargs["dtype"]),
            arch_config=hf_config(llm, arch),
            fixed_length=fixed,
            gpu_ids=list(range(tp)),
            gpu_note=f"measuring the GPU(s) vLLM runs on: CUDA device(s) {list(range(tp))} (tensor_parallel_size {tp})",
            workload_extra={"engine": "vllm",
                            "engine_kwargs": {k: v for k, v in kwargs.items() if k != "model" or v == m.id},
                            "prefill_sampling_params": harness.kwargs_prefill},
        )

        def finalize_timing_notes() -> None:
            if harness.with_metrics == 0:
                gen.reasons = {"ttft": NO_METRICS, "itl": NO_METRICS, "itl_steps": NO_STEP_TIMES}
                gen.timing_note = ("request latency = wall time of the batch's generate() call (vLLM returned no "
                                   "per-request metrics); TTFT and ITL not measured")
            else:
                gen.reasons = {"ttft": NO_METRICS, "itl": "needs requests with at least 2 output tokens",
                               "itl_steps": NO_STEP_TIMES}
                gen.timing_note = ("request latency and TTFT from vLLM's per-request RequestOutput.metrics (first/last "
                                   "token time) relative to the batch's generate() call; itl_mean_s = (last - first "
                                   "token time) / (tokens - 1) per request")
                if harness.without_metrics:
                    gen.timing_note += (f"; {harness.without_metrics} request(s) had no metrics and use the "
                                        "generate() wall time as latency")

        base_pass = harness.run_pass

        def run_pass(prefill: bool, stop_ev: threading.Event) -> PassStats:
            stats = base_pass(prefill, stop_ev)
            finalize_timing_notes()
            return stats

        gen.run_pass = run_pass
        notes.append("prompts passed to vLLM as token ids (TokensPrompt); SamplingParams(detokenize=False): "
                     "outputs are counted from RequestOutput token ids, never decoded")
        result = run_generation(cfg, stop, gen, started_at, **meter_kwargs)
        note_first_request(engine, result.get("warmup"))
        result["engine"] = engine
        return result
    finally:
        release_unless_persistent()  # a per-run worker gives the engine back now; a persistent one keeps it
