"""The measurement flow every LLM backend shares (pytorch, vllm, tensorrt).

A backend loads its engine, turns the prompt set into token ids with `tokenize_prompts` (outside
every window), and hands `run_generation` a `Generation`: a function running one pass over the
prompt set (full generation, or 1 new token per request for the prefill window), a warm-up step and
the facts the result records (library versions, model info, generate arguments, timing method).
`run_generation` then does what is common: meter start -> idle baseline -> warm-up -> steady window
(full passes until measurement.min_window_s) -> prefill window -> metrics, phases, validation,
environment, workload -> the v3 result document.
"""
from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from lem_worker.backends.prompting import tokenize_prompts  # noqa: F401  (re-exported for the backends)
from lem_worker.config import Experiment, WorkerConfig
from lem_worker.efficiency import EngineStats, efficiency_metrics
from lem_worker.energy.meter import Flag, Meter, WindowEnergy
from lem_worker.environment import base_environment
from lem_worker.errors import Terminated, WorkerError
from lem_worker.log import log
from lem_worker.reasoning import ReasoningCounter, reasoning_metrics
from lem_worker.report import MetricSet, build_result, energy_block, validation_block
from lem_worker.warmup import run_warmup

NO_STREAM = "the model's generate() reported no streamed tokens"
NO_ITL = "needs requests with at least 2 output tokens"


@dataclass
class PassStats:
    output_tokens: int = 0
    input_tokens: int = 0
    requests: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    itls: list[float] = field(default_factory=list)  # per-request mean inter-token latency
    step_gaps: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reasoning_tokens: int = 0  # of outputs the answer marker could split (split_outputs of them)
    answer_tokens: int = 0
    split_outputs: int = 0

    def merge(self, o: "PassStats") -> None:
        self.output_tokens += o.output_tokens
        self.input_tokens += o.input_tokens
        self.requests += o.requests
        self.failed += o.failed
        self.latencies += o.latencies
        self.ttfts += o.ttfts
        self.itls += o.itls
        self.step_gaps += o.step_gaps
        self.errors += o.errors
        self.reasoning_tokens += o.reasoning_tokens
        self.answer_tokens += o.answer_tokens
        self.split_outputs += o.split_outputs

    def count_reasoning(self, rc: Optional[ReasoningCounter], output_ids: Any) -> None:
        split = rc.split(list(output_ids)) if rc is not None else None
        if split is not None:
            self.reasoning_tokens += split[0]
            self.answer_tokens += split[1]
            self.split_outputs += 1

    def fail_batch(self, n: int, exc: BaseException) -> None:
        self.failed += n
        self.requests += n
        self.errors.append(f"{type(exc).__name__}: {exc}")


def percentile(values: list[float], q: float) -> Optional[float]:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def count_new_tokens(row: list[int], eos: set[int], ignore_eos: bool) -> int:
    """Generated tokens in a padded row: up to and including the first EOS unless EOS is ignored."""
    if not ignore_eos:
        for i, t in enumerate(row):
            if t in eos:
                return i + 1
    return len(row)


def tokenizer_ids(tok: Any) -> tuple[list[int], Optional[int]]:
    """(EOS ids, pad id) of a tokenizer; the pad falls back to the first EOS."""
    eos = getattr(tok, "eos_token_id", None)
    eos_ids = [int(e) for e in eos] if isinstance(eos, (list, tuple)) else ([int(eos)] if eos is not None else [])
    pad = getattr(tok, "pad_token_id", None)
    if pad is None:
        pad = eos_ids[0] if eos_ids else None
    return eos_ids, pad


def decoding_kwargs(exp: Experiment, max_tokens: int, fixed: bool) -> dict[str, Any]:
    """The decoder settings every engine's SamplingParams shares (vLLM, TensorRT-LLM): token limits,
    fixed length as min_tokens = max_tokens with EOS ignored, and the sampling parameters when
    sampling. Greedy adds nothing here: each engine states greedy decoding its own way."""
    d = exp.decoder
    kw: dict[str, Any] = {"max_tokens": max_tokens}
    if fixed:
        kw["min_tokens"] = max_tokens
        kw["ignore_eos"] = True
    if d.do_sample:
        kw["temperature"] = d.temperature if d.temperature > 0 else 1.0
        kw["top_p"] = d.top_p
        if d.top_k > 0:  # 0 = no top-k limit: leave the engine's default (disabled)
            kw["top_k"] = d.top_k
    if d.repetition_penalty is not None:
        kw["repetition_penalty"] = d.repetition_penalty
    return kw


def cuda_sync() -> Callable[[], None]:
    """torch.cuda.synchronize on every visible device when torch with CUDA is importable, else a no-op."""
    try:
        import torch
    except ImportError:
        return lambda: None
    try:
        if not torch.cuda.is_available():
            return lambda: None
        n = torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        return lambda: None

    def sync() -> None:
        for i in range(n):
            torch.cuda.synchronize(i)

    return sync


@dataclass
class Generation:
    """A backend's prepared workload and what the result records about it."""

    run_pass: Callable[[bool, threading.Event], PassStats]  # (prefill, stop): one pass over every batch
    warm_step: Callable[[], None]  # one full-generation batch
    sync: Callable[[], None]
    requests_per_pass: int
    batch_sizes: list[int]
    load_s: Optional[float]  # None: the engine was reused from an earlier run (persistent worker)
    notes: list[str]
    library_versions: dict[str, Optional[str]]
    model_info: dict[str, Any]
    generate_kwargs: dict[str, Any]
    fixed_length: bool
    gpu_ids: Optional[list[int]] = None  # CUDA devices holding the model (measured unless measurement.gpu_ids)
    gpu_note: Optional[str] = None
    timing_note: str = ("request latency = time from the batch's generate() call to the request's last token; "
                        "TTFT and ITL from streamer timestamps in the same generate() call")
    # reasons for null latency metrics; a backend may update them while it runs
    reasons: dict[str, str] = field(default_factory=lambda: {"ttft": NO_STREAM, "itl": NO_ITL, "itl_steps": NO_ITL})
    env_extra: dict[str, Any] = field(default_factory=dict)
    workload_extra: dict[str, Any] = field(default_factory=dict)
    reasoning: Optional[ReasoningCounter] = None
    # extended efficiency metrics (efficiency.py): what the backend can tell
    engine_stats: Optional[EngineStats] = None  # ("begin" | "end") -> engine counters, called outside the window
    padded_input_per_pass: Optional[int] = None  # padded prompt tokens per pass (static/sorted batching)
    model_bytes: Optional[int] = None
    arch_config: Optional[dict[str, Any]] = None
    after_windows: Optional[Callable[[], tuple[dict[str, Optional[float]], dict[str, str], list[str]]]] = None


def repeat_until(run_pass: Callable[[bool, threading.Event], PassStats], prefill: bool, min_s: float,
                 stop: threading.Event, max_reps: int) -> tuple[PassStats, int, float]:
    total = PassStats()
    reps = 0
    t0 = time.perf_counter()
    while True:
        total.merge(run_pass(prefill, stop))
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_s or reps >= max_reps:
            return total, reps, elapsed


def _phase(win: Optional[WindowEnergy], reps: int, reason: Optional[str]) -> dict[str, Any]:
    if win is None or win.gpu.joules is None:
        return {"energy_j": None, "duration_s": None if win is None else win.duration_s / max(reps, 1),
                "method": "", "reason": reason or (win.gpu.reason if win else "not measured")}
    return {"energy_j": win.gpu.joules / reps, "duration_s": win.duration_s / reps, "method": "", "reason": None}


def run_generation(cfg: WorkerConfig, stop: threading.Event, gen: Generation, started_at: str,
                   **meter_kwargs: Any) -> dict[str, Any]:
    from lem_worker.gpuguard import guard_for
    from lem_worker.metering import lock_for_run, make_meter
    from lem_worker.timeutil import utc_now_iso

    exp = cfg.experiment
    notes = list(gen.notes)
    max_reps = exp.measurement.max_repetitions
    split = exp.measurement.prefill_split
    if exp.measurement.gpu_ids is None and gen.gpu_ids:
        cfg = dataclasses.replace(cfg, experiment=dataclasses.replace(
            exp, measurement=dataclasses.replace(exp.measurement, gpu_ids=list(gen.gpu_ids))))
        notes.append(gen.gpu_note or f"measuring the GPU(s) holding the model: CUDA device(s) {gen.gpu_ids}")
    meter: Meter = make_meter(cfg, sync=gen.sync, **meter_kwargs)
    lock = lock_for_run(cfg, meter, stop)
    try:
        lock.acquire()  # held over idle baseline + warm-up + windows: one measurement per device at a time
        meter.start()
        baseline = meter.idle_baseline(exp.measurement.idle_baseline_s, stop)
        if stop.is_set():
            raise Terminated("stopped during the idle baseline")
        h = meter.begin("warmup")
        warm = run_warmup(exp.warmup, gen.warm_step, stop)
        meter.end(h)
        log(f"steady window: full passes until >= {exp.measurement.min_window_s:g}s")
        win_started = utc_now_iso()
        stats_begin = gen.engine_stats("begin") if gen.engine_stats else {}
        guard = guard_for(meter)  # other processes on this run's GPUs at window start and end
        if guard is not None:
            guard.check("window_start")
        h = meter.begin("steady")
        stats, reps, _ = repeat_until(gen.run_pass, False, exp.measurement.min_window_s, stop, max_reps)
        win = meter.end(h)
        stats_end = gen.engine_stats("end") if gen.engine_stats else {}
        pre_win: Optional[WindowEnergy] = None
        pre_reps = 0
        if split:
            log("prefill window: 1-new-token passes")
            h = meter.begin("prefill")
            _, pre_reps, _ = repeat_until(gen.run_pass, True, exp.measurement.min_window_s, stop, max_reps)
            pre_win = meter.end(h)
        win_ended = utc_now_iso()  # end of the last measured window (steady, then prefill)
        extra_metrics = gen.after_windows() if gen.after_windows else ({}, {}, [])  # e.g. the profiler pass
        if guard is not None:
            guard.check("window_end")
        if stats.requests and stats.failed == stats.requests:
            raise WorkerError(f"every request failed; first error: {stats.errors[0] if stats.errors else 'unknown'}")
        ms = MetricSet()
        flags: list[Flag] = guard.flags() if guard is not None else []
        if pre_win is not None:
            flags.extend(f for f in pre_win.flags)
        energy = energy_block(win, baseline, ms, flags)
        d = win.duration_s
        out_tok = stats.output_tokens
        ms.put("requests", float(stats.requests - stats.failed))
        ms.put("failed_requests", float(stats.failed))
        ms.put("repetitions", float(reps))
        ms.put("input_tokens", float(stats.input_tokens))
        ms.put("output_tokens", float(out_tok))
        ms.ratio("output_tokens_per_s", out_tok, d, "", "zero window")
        ms.ratio("tokens_per_s", stats.input_tokens + out_tok, d, "", "zero window")
        ms.ratio("requests_per_s", stats.requests - stats.failed, d, "", "zero window")
        no_req = "no completed request"
        for q in (50, 90, 95, 99):
            ms.put(f"latency_p{q}_s", percentile(stats.latencies, q), no_req)
        ms.put("latency_mean_s", statistics.fmean(stats.latencies) if stats.latencies else None, no_req)
        r = gen.reasons
        ms.put("ttft_mean_s", statistics.fmean(stats.ttfts) if stats.ttfts else None, r["ttft"])
        ms.put("ttft_p50_s", percentile(stats.ttfts, 50), r["ttft"])
        ms.put("ttft_p99_s", percentile(stats.ttfts, 99), r["ttft"])
        ms.put("itl_mean_s", statistics.fmean(stats.itls) if stats.itls else None, r["itl"])
        ms.put("itl_p50_s", percentile(stats.step_gaps, 50), r["itl_steps"])
        ms.put("itl_p99_s", percentile(stats.step_gaps, 99), r["itl_steps"])
        gpu_reason = ms.unmeasured.get("energy_gpu_j", "GPU energy not measured")
        ms.ratio("j_per_output_token", ms.get("energy_gpu_raw_j"), out_tok, gpu_reason, "no output tokens")
        ms.ratio("j_per_output_token_adjusted", ms.get("energy_gpu_adjusted_j"), out_tok,
                 ms.unmeasured.get("energy_gpu_adjusted_j", gpu_reason), "no output tokens")
        ms.ratio("j_per_output_token_total", ms.get("energy_total_raw_j"), out_tok,
                 ms.unmeasured.get("energy_total_raw_j", "not measured"), "no output tokens")
        done = stats.requests - stats.failed
        ms.ratio("j_per_request", ms.get("energy_gpu_raw_j"), done, gpu_reason, no_req)
        ms.ratio("j_per_request_adjusted", ms.get("energy_gpu_adjusted_j"), done,
                 ms.unmeasured.get("energy_gpu_adjusted_j", gpu_reason), no_req)
        ms.put("load_s", gen.load_s, "engine reused from an earlier run of this worker: not loaded for this run")
        reasoning_metrics(ms, gen.reasoning, stats.reasoning_tokens, stats.answer_tokens, stats.split_outputs,
                          stats.requests - stats.failed)
        notes.extend(efficiency_metrics(
            ms, meter, win, reps=reps, requests=stats.requests - stats.failed, input_tokens=stats.input_tokens,
            output_tokens=out_tok, batch_sizes=gen.batch_sizes, batch_size=exp.batching.batch_size,
            padded_input_per_pass=gen.padded_input_per_pass, model_bytes=gen.model_bytes, stats_begin=stats_begin,
            stats_end=stats_end, arch=gen.arch_config, n_params=gen.model_info.get("parameters"),
            max_output_tokens=exp.max_output_tokens))
        for k, v in extra_metrics[0].items():
            ms.put(k, v, extra_metrics[1].get(k))
        notes.extend(extra_metrics[2])
        # prefill / decode split, per pass over the prompt set (GPU energy)
        phases: Optional[dict[str, Any]] = None
        method = ("prefill = GPU energy of a pass generating 1 new token per request (averaged over its repetitions); "
                  "decode = full-generation pass energy - prefill pass energy (optimum-benchmark energy_star method)")
        if split:
            full_pass = win.gpu.joules / reps if win.gpu.joules is not None else None
            pre = _phase(pre_win, pre_reps, None)
            pre["method"] = "1-new-token pass"
            if full_pass is not None and pre["energy_j"] is not None:
                dec_e: Optional[float] = full_pass - pre["energy_j"]
                dec_reason = None
                if dec_e is not None and dec_e < 0:
                    flags.append(Flag("negative_decode_energy", "warn",
                                      f"prefill pass energy {pre['energy_j']:.3f} J exceeds the full pass {full_pass:.3f} J"))
            else:
                dec_e = None
                dec_reason = pre["reason"] or win.gpu.reason or "GPU energy not measured"
            dec = {"energy_j": dec_e, "duration_s": (d / reps) - (pre["duration_s"] or 0) if pre["duration_s"] is not None else None,
                   "method": "full pass - prefill pass", "reason": dec_reason}
            phases = {"prefill": pre, "decode": dec, "method": method}
            ms.put("energy_prefill_j", pre["energy_j"], pre["reason"] or "not measured")
            ms.put("energy_decode_j", dec_e, dec_reason or "not measured")
            ms.put("prefill_time_s", pre["duration_s"], "not measured")
            out_per_pass = out_tok / reps if reps else 0
            ms.ratio("j_per_output_token_decode", dec_e, out_per_pass, dec_reason or "not measured", "no output tokens")
        else:
            for k in ("energy_prefill_j", "energy_decode_j", "prefill_time_s", "j_per_output_token_decode"):
                ms.put(k, None, "prefill/decode split disabled (measurement.prefill_split = false)")
        j_tok = ms.get("j_per_output_token")
        validation = validation_block(cfg, win, flags, failed_requests=stats.failed, j_per_token=j_tok,
                                      baseline=baseline, warmup=warm)
        if stats.errors:
            notes.append(f"{stats.failed} request(s) failed; first error: {stats.errors[0]}")
        notes.extend(meter.notes)
        if out_tok and stats.latencies:
            notes.append(gen.timing_note)
        env = base_environment()
        env.update(meter.environment())
        env["library_versions"] = dict(gen.library_versions)
        env.update(gen.env_extra)
        env["model"] = gen.model_info
        env["started_at"] = started_at
        if guard is not None:
            env["gpu_guard"] = guard.record
        window = {"duration_s": d, "min_s": exp.measurement.min_window_s, "repetitions": reps,
                  "short": d < exp.measurement.min_window_s,
                  "rule": "full passes over the prompt set, repeated until the window reaches measurement.min_window_s",
                  "prefill_repetitions": pre_reps if split else None,
                  "prefill_duration_s": pre_win.duration_s if pre_win else None,
                  "started_at": win_started, "ended_at": win_ended}
        workload = {
            "kind": "llm_generation",
            "prompts": exp.prompts.source,
            "requests_per_pass": gen.requests_per_pass,
            "batches_per_pass": len(gen.batch_sizes),
            "batch_sizes": gen.batch_sizes[:64],
            "batching": exp.batching.strategy,
            "max_input_tokens": exp.max_input_tokens,
            "max_output_tokens": exp.max_output_tokens,
            "fixed_length": gen.fixed_length,
            "generate_kwargs": {k: v for k, v in gen.generate_kwargs.items() if isinstance(v, (int, float, str, bool, list))},
        }
        workload.update(gen.workload_extra)
        if gen.reasoning is not None:
            workload["reasoning"] = gen.reasoning.plan.record()
        ended_at = utc_now_iso()
        env["ended_at"] = ended_at
        result = build_result(cfg, started_at, ended_at, ms, energy, meter, warm, window, phases, validation, env, notes,
                              workload)
        result["device_lock"] = lock.record
        return result
    finally:
        meter.close()
        lock.release()
