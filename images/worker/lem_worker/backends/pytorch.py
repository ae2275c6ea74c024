"""The PyTorch (transformers) backend: measured generation over a prompt set.

Flow: load model -> tokenize prompts and form batches (outside every window) -> start the
meter (NVML/RAPL, sampler) -> idle baseline -> warm-up (fixed or CV) -> steady window (full
passes over all batches, repeated until measurement.min_window_s) -> prefill window (the same
batches generating 1 new token) -> metrics. TTFT and ITL come from a streamer inside the single
generation call of each batch: nothing is generated twice for timing.
"""
from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from lem_worker.backends.loader import LoadedModel, load_transformers
from lem_worker.batching import Request, make_batches
from lem_worker.config import Experiment, WorkerConfig
from lem_worker.energy.meter import Flag, Meter, WindowEnergy
from lem_worker.environment import base_environment, module_version
from lem_worker.errors import ConfigError, Terminated, WorkerError
from lem_worker.log import log
from lem_worker.prompts import load_prompts
from lem_worker.report import MetricSet, build_result, energy_block, validation_block
from lem_worker.timeutil import utc_now_iso
from lem_worker.warmup import run_warmup

Loader = Callable[[Experiment], LoadedModel]


class TimingStreamer:
    """transformers streamer protocol (put/end): timestamps each decoding step.

    generate() calls put(prompt_ids) once, then put(new_tokens) once per step."""

    __slots__ = ("times", "_prompt_seen", "_clock")

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False
        self._clock = time.perf_counter

    def put(self, value: Any) -> None:
        if self._prompt_seen:
            self.times.append(self._clock())
        else:
            self._prompt_seen = True

    def end(self) -> None:
        pass


@dataclass
class PreparedBatch:
    requests: list[Request]
    input_ids: Any  # tensor [B, L] (left-padded)
    attention_mask: Any
    input_tokens: int  # non-pad tokens
    width: int


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


def used_cuda_devices(model: Any) -> Optional[list[int]]:
    """CUDA device indices holding the model's parameters (None when not on CUDA / unknown)."""
    try:
        idx = {p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"}
    except Exception:  # noqa: BLE001
        return None
    return sorted(idx) or None


def percentile(values: list[float], q: float) -> Optional[float]:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def tokenize(loaded: LoadedModel, exp: Experiment, notes: list[str]) -> list[Request]:
    special = tuple(loaded.eos_ids + [loaded.pad_id])
    pset = load_prompts(exp.prompts, loaded.vocab_size, special, seed=int(exp.extra.get("seed", 0) or 0))
    notes.extend(pset.notes)
    if pset.token_ids is not None:
        reqs = [Request(i, ids[: exp.max_input_tokens]) for i, ids in enumerate(pset.token_ids)]
        return reqs
    tok = loaded.tokenizer
    use_chat = exp.extra.get("chat_template", True) is not False and bool(getattr(tok, "chat_template", None))
    if use_chat:
        notes.append("prompts wrapped in the tokenizer's chat template (user turn + generation prompt)")
    reqs = []
    truncated = 0
    assert pset.texts is not None
    for i, text in enumerate(pset.texts):
        if use_chat:
            text = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        full = tok(text, add_special_tokens=not use_chat)["input_ids"]
        ids = list(full[: exp.max_input_tokens])
        truncated += len(full) > len(ids)
        if not ids:
            raise ConfigError(f"experiment.prompts: prompt {i} tokenizes to nothing")
        reqs.append(Request(i, ids))
    if truncated:
        notes.append(f"{truncated} prompt(s) truncated to max_input_tokens={exp.max_input_tokens}")
    return reqs


def prepare(loaded: LoadedModel, batches: list[list[Request]]) -> list[PreparedBatch]:
    torch = loaded.torch
    out = []
    for b in batches:
        width = max(len(r.input_ids) for r in b)
        ids = [[loaded.pad_id] * (width - len(r.input_ids)) + r.input_ids for r in b]
        mask = [[0] * (width - len(r.input_ids)) + [1] * len(r.input_ids) for r in b]
        out.append(PreparedBatch(
            b,
            torch.tensor(ids, dtype=torch.long, device=loaded.device),
            torch.tensor(mask, dtype=torch.long, device=loaded.device),
            sum(len(r.input_ids) for r in b),
            width,
        ))
    return out


def generate_kwargs(exp: Experiment, loaded: LoadedModel, max_new: int) -> dict[str, Any]:
    d = exp.decoder
    kw: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": d.do_sample, "pad_token_id": loaded.pad_id}
    if d.fixed_length or loaded.ignore_eos:
        kw["min_new_tokens"] = max_new
    if d.do_sample:
        kw["temperature"] = d.temperature if d.temperature > 0 else 1.0
        kw["top_p"] = d.top_p
        kw["top_k"] = d.top_k
    if d.repetition_penalty is not None:
        kw["repetition_penalty"] = d.repetition_penalty
    if loaded.eos_ids:
        kw["eos_token_id"] = loaded.eos_ids if len(loaded.eos_ids) > 1 else loaded.eos_ids[0]
    kw.update(loaded.generate_extra)
    return kw


def count_new_tokens(row: list[int], eos: set[int], ignore_eos: bool) -> int:
    if not ignore_eos:
        for i, t in enumerate(row):
            if t in eos:
                return i + 1
    return len(row)


class Harness:
    def __init__(self, loaded: LoadedModel, exp: Experiment, batches: list[PreparedBatch]) -> None:
        self.loaded = loaded
        self.exp = exp
        self.batches = batches
        self.eos = set(loaded.eos_ids)
        self.kwargs_full = generate_kwargs(exp, loaded, exp.max_output_tokens)
        self.kwargs_prefill = generate_kwargs(exp, loaded, 1)
        self.torch = loaded.torch

    def run_batch(self, b: PreparedBatch, kwargs: dict[str, Any], stats: Optional[PassStats]) -> None:
        streamer = TimingStreamer()
        t0 = time.perf_counter()
        try:
            with self.torch.inference_mode():
                out = self.loaded.model.generate(input_ids=b.input_ids, attention_mask=b.attention_mask,
                                                 streamer=streamer, **kwargs)
        except WorkerError:  # Terminated (SIGTERM) or the timeout: not a failed batch
            raise
        except Exception as exc:  # noqa: BLE001 - a failed batch is counted, not fatal
            if stats is not None:
                stats.failed += len(b.requests)
                stats.requests += len(b.requests)
                stats.errors.append(f"{type(exc).__name__}: {exc}")
            return
        self.loaded.sync()
        t_end = time.perf_counter()
        if stats is None:
            return
        new = out[:, b.width:].tolist()
        times = streamer.times
        stats.requests += len(b.requests)
        stats.input_tokens += b.input_tokens
        for row in new:
            n = count_new_tokens(row, self.eos, self.loaded.ignore_eos or self.exp.decoder.fixed_length)
            stats.output_tokens += n
            done = times[n - 1] if 0 < n <= len(times) else t_end
            stats.latencies.append(done - t0)
            if times:
                stats.ttfts.append(times[0] - t0)
                if n > 1 and n <= len(times):
                    stats.itls.append((times[n - 1] - times[0]) / (n - 1))
        stats.step_gaps.extend(b2 - a for a, b2 in zip(times, times[1:]))

    def run_pass(self, kwargs: dict[str, Any], stop: threading.Event) -> PassStats:
        stats = PassStats()
        for b in self.batches:
            if stop.is_set():
                raise Terminated("stopped during generation")
            self.run_batch(b, kwargs, stats)
        return stats

    def repeat_until(self, kwargs: dict[str, Any], min_s: float, stop: threading.Event, max_reps: int) -> tuple[PassStats, int, float]:
        total = PassStats()
        reps = 0
        t0 = time.perf_counter()
        while True:
            total.merge(self.run_pass(kwargs, stop))
            reps += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s or reps >= max_reps:
                return total, reps, elapsed


def _phase(win: Optional[WindowEnergy], reps: int, reason: Optional[str]) -> dict[str, Any]:
    if win is None or win.gpu.joules is None:
        return {"energy_j": None, "duration_s": None if win is None else win.duration_s / max(reps, 1),
                "method": "", "reason": reason or (win.gpu.reason if win else "not measured")}
    return {"energy_j": win.gpu.joules / reps, "duration_s": win.duration_s / reps, "method": "", "reason": None}


def run_pytorch(cfg: WorkerConfig, stop: threading.Event, loader: Optional[Loader] = None, **meter_kwargs: Any) -> dict[str, Any]:
    from lem_worker.runner import make_meter

    exp = cfg.experiment
    started_at = utc_now_iso()
    notes: list[str] = []
    if loader is None:
        loader = load_transformers
        spec = exp.extra.get("loader")
        if isinstance(spec, str) and ":" in spec:  # test/advanced hook: "module:function"
            import importlib

            mod, fn = spec.split(":", 1)
            loader = getattr(importlib.import_module(mod), fn)
            notes.append(f"model loaded by extra.loader {spec}")
    t_load = time.perf_counter()
    loaded = loader(exp)
    load_s = time.perf_counter() - t_load
    notes.extend(loaded.notes)
    requests = tokenize(loaded, exp, notes)
    batches = make_batches(requests, exp.batching, exp.max_output_tokens)
    prepared = prepare(loaded, batches)
    harness = Harness(loaded, exp, prepared)
    log(f"pytorch: {len(requests)} request(s) in {len(prepared)} batch(es) ({exp.batching.strategy}), "
        f"max_new_tokens {exp.max_output_tokens}, device {loaded.device}")
    max_reps = int(exp.extra.get("max_repetitions", 1000) or 1000)
    split = exp.extra.get("prefill_split", True) is not False
    used = used_cuda_devices(loaded.model)
    if exp.measurement.gpu_ids is None and used:
        cfg = dataclasses.replace(cfg, experiment=dataclasses.replace(
            exp, measurement=dataclasses.replace(exp.measurement, gpu_ids=used)))
        notes.append(f"measuring the GPU(s) holding the model: CUDA device(s) {used}")
    meter: Meter = make_meter(cfg, sync=loaded.sync, **meter_kwargs)
    try:
        meter.start()
        baseline = meter.idle_baseline(exp.measurement.idle_baseline_s, stop)
        if stop.is_set():
            raise Terminated("stopped during the idle baseline")
        counter = [0]

        def warm_step() -> None:
            b = prepared[counter[0] % len(prepared)]
            counter[0] += 1
            harness.run_batch(b, harness.kwargs_full, None)

        h = meter.begin("warmup")
        warm = run_warmup(exp.warmup, warm_step, stop)
        meter.end(h)
        log(f"steady window: full passes until >= {exp.measurement.min_window_s:g}s")
        h = meter.begin("steady")
        stats, reps, _ = harness.repeat_until(harness.kwargs_full, exp.measurement.min_window_s, stop, max_reps)
        win = meter.end(h)
        pre_win: Optional[WindowEnergy] = None
        pre_reps = 0
        if split:
            log("prefill window: 1-new-token passes")
            h = meter.begin("prefill")
            _, pre_reps, _ = harness.repeat_until(harness.kwargs_prefill, exp.measurement.min_window_s, stop, max_reps)
            pre_win = meter.end(h)
        if stats.requests and stats.failed == stats.requests:
            raise WorkerError(f"every request failed; first error: {stats.errors[0] if stats.errors else 'unknown'}")
        ms = MetricSet()
        flags: list[Flag] = []
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
        no_stream = "the model's generate() reported no streamed tokens"
        ms.put("ttft_mean_s", statistics.fmean(stats.ttfts) if stats.ttfts else None, no_stream)
        ms.put("ttft_p50_s", percentile(stats.ttfts, 50), no_stream)
        ms.put("ttft_p99_s", percentile(stats.ttfts, 99), no_stream)
        no_itl = "needs requests with at least 2 output tokens"
        ms.put("itl_mean_s", statistics.fmean(stats.itls) if stats.itls else None, no_itl)
        ms.put("itl_p50_s", percentile(stats.step_gaps, 50), no_itl)
        ms.put("itl_p99_s", percentile(stats.step_gaps, 99), no_itl)
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
        ms.put("load_s", load_s)
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
                ms.put(k, None, "prefill/decode split disabled (extra.prefill_split = false)")
        j_tok = ms.get("j_per_output_token")
        validation = validation_block(cfg, win, flags, failed_requests=stats.failed, j_per_token=j_tok)
        if stats.errors:
            notes.append(f"{stats.failed} request(s) failed; first error: {stats.errors[0]}")
        notes.extend(meter.notes)
        if out_tok and stats.latencies:
            notes.append("request latency = time from the batch's generate() call to the request's last token; "
                         "TTFT and ITL from streamer timestamps in the same generate() call")
        env = base_environment()
        env.update(meter.environment())
        env["library_versions"] = {
            "torch": module_version("torch"), "transformers": module_version("transformers"),
            "numpy": module_version("numpy"), "accelerate": module_version("accelerate"),
            "bitsandbytes": module_version("bitsandbytes") if exp.quantization.startswith("bnb") else None,
        }
        torch = loaded.torch
        try:
            env["torch_cuda_version"] = getattr(torch.version, "cuda", None)
        except Exception:  # noqa: BLE001
            env["torch_cuda_version"] = None
        env["model"] = loaded.info
        env["started_at"] = started_at
        window = {"duration_s": d, "min_s": exp.measurement.min_window_s, "repetitions": reps,
                  "short": d < exp.measurement.min_window_s,
                  "rule": "full passes over the prompt set, repeated until the window reaches measurement.min_window_s",
                  "prefill_repetitions": pre_reps if split else None,
                  "prefill_duration_s": pre_win.duration_s if pre_win else None}
        workload = {
            "kind": "llm_generation",
            "prompts": exp.prompts.source,
            "requests_per_pass": len(requests),
            "batches_per_pass": len(prepared),
            "batch_sizes": [len(b.requests) for b in prepared][:64],
            "batching": exp.batching.strategy,
            "max_input_tokens": exp.max_input_tokens,
            "max_output_tokens": exp.max_output_tokens,
            "fixed_length": bool(exp.decoder.fixed_length or loaded.ignore_eos),
            "generate_kwargs": {k: v for k, v in harness.kwargs_full.items() if isinstance(v, (int, float, str, bool, list))},
        }
        ended_at = utc_now_iso()
        env["ended_at"] = ended_at
        return build_result(cfg, started_at, ended_at, ms, energy, meter, warm, window, phases, validation, env, notes, workload)
    finally:
        meter.close()
