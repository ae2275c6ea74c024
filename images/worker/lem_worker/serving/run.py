"""The serving measurement: an OpenAI-compatible server under seeded traffic, its GPUs metered.

meter start -> idle baseline (server idle) -> warm-up requests (one at a time, recorded) -> traffic,
with the steady window opened and closed live (driver.py) -> metrics, energy over the steady window,
the `serving` block and the v3 result. GPU energy is whole-GPU: everything the measured GPUs spent in the
window is attributed to the measured traffic.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import threading
import time
from typing import Any, Callable, Optional

from lem_worker.config import Experiment, WorkerConfig
from lem_worker.energy.meter import Flag, WindowEnergy
from lem_worker.environment import base_environment, module_version
from lem_worker.errors import Terminated, WorkerError
from lem_worker.log import log
from lem_worker.prompts import load_prompts
from lem_worker.report import MetricSet, build_result, energy_block, validation_block
from lem_worker.serving.client import Endpoint, Prompt, RequestRecord, check_server, request_body, stream_request
from lem_worker.serving.driver import TrafficRun, drive
from lem_worker.serving.settings import ServingCfg, serving_cfg
from lem_worker.serving.stats import in_window, summarize
from lem_worker.serving.traffic import planned_requests
from lem_worker.serving.scrape import MetricsPoller, scrape_metrics
from lem_worker.timeutil import utc_now_iso
from lem_worker.warmup import run_warmup

ATTRIBUTION = ("whole-GPU energy: everything the measured GPUs (measurement.gpu_ids) spent in the steady window is "
               "attributed to the measured traffic; J/request = window energy / requests finished in the window, "
               "J/output token = window energy / output tokens streamed in the window")


def wall_iso(stamp: float) -> str:
    """A perf_counter stamp as ISO-8601 UTC."""
    t = time.time() - (time.perf_counter() - stamp)
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def sampling(exp: Experiment) -> dict[str, Any]:
    d = exp.decoder
    if not d.do_sample:
        return {"temperature": 0.0}
    kw: dict[str, Any] = {"temperature": d.temperature if d.temperature > 0 else 1.0, "top_p": d.top_p}
    if d.top_k > 0:
        kw["top_k"] = d.top_k
    if d.repetition_penalty is not None:
        kw["repetition_penalty"] = d.repetition_penalty
    return kw


def load_serving_prompts(exp: Experiment, seed: int, notes: list[str]) -> list[Prompt]:
    pset = load_prompts(exp.prompts, None, (), seed=seed)
    notes.extend(pset.notes)
    if pset.texts is not None:
        return list(pset.texts)
    assert pset.token_ids is not None
    return [list(ids[: exp.max_input_tokens]) for ids in pset.token_ids]


def run_serving(cfg: WorkerConfig, stop: threading.Event, **meter_kwargs: Any) -> dict[str, Any]:
    exp = cfg.experiment
    assert exp.model is not None
    maybe = serving_cfg(exp)
    assert maybe is not None
    sc: ServingCfg = maybe
    started_at = utc_now_iso()
    notes: list[str] = []
    server_info: dict[str, Any] = {"managed": sc.managed}
    if sc.managed:
        from lem_worker.serving.manage import ensure_server

        server_info.update(ensure_server(exp, sc, stop, notes))
    server_info.update(check_server(sc.base_url, sc.origin, exp.model.id))
    t = sc.traffic
    prompts = load_serving_prompts(exp, t.seed, notes)
    planned = planned_requests(t, len(prompts))
    fixed = bool(exp.decoder.fixed_length)
    samp = sampling(exp)
    ep = Endpoint.parse(sc.base_url)
    timeout = sc.request_timeout_s

    def send(i: int, on_first: Optional[Any] = None, warm: bool = False) -> RequestRecord:
        body = request_body(sc.api, exp.model.id if exp.model else "", prompts[i % len(prompts)],
                            exp.max_output_tokens, fixed, samp)
        rec = RequestRecord(index=i, warmup=warm)
        return stream_request(ep, sc.api, body, rec, timeout, on_first)

    if exp.measurement.gpu_ids is None and sc.managed:
        tp = exp.vllm.tensor_parallel_size
        cfg = dataclasses.replace(cfg, experiment=dataclasses.replace(
            exp, measurement=dataclasses.replace(exp.measurement, gpu_ids=list(range(tp)))))
        notes.append(f"measuring the GPU(s) `vllm serve` runs on: CUDA device(s) {list(range(tp))}")
    elif exp.measurement.gpu_ids is None:
        notes.append("vllm.endpoint: the server's GPUs are not known to lem; every visible GPU is measured "
                     "(set measurement.gpu_ids to the server's GPUs)")
    label = (f"traffic: {t.arrival}" + (f" at {t.rate_rps:g} req/s" if t.rate_rps else "")
             + f", concurrency {t.concurrency or ('1' if not t.open_loop else 'unbounded')}, "
             + (f"{planned} request(s)" if planned is not None else f"for {t.duration_s:g}s"))
    return measure_traffic(
        cfg, sc, stop, started_at, notes, server_info, planned, label,
        warm_one=lambda i: send(i, None, True),
        drive_traffic=lambda on_start, on_end: drive(t, planned, lambda i, first: send(i, first), on_start, on_end, stop),
        **meter_kwargs)


def measure_traffic(cfg: WorkerConfig, sc: ServingCfg, stop: threading.Event, started_at: str, notes: list[str],
                    server_info: dict[str, Any], planned: Optional[int], label: str,
                    warm_one: Callable[[int], RequestRecord],
                    drive_traffic: Callable[[Callable[[], None], Callable[[], None]], TrafficRun],
                    **meter_kwargs: Any) -> dict[str, Any]:
    """The measurement both traffic sources share (a server over HTTP, the offline vLLM engine): device
    lock -> meter start -> idle baseline -> warm-up requests (one at a time, `warm_one(i)`) -> traffic
    (`drive_traffic(on_start, on_end)` opens and closes the steady window live) -> `assemble`."""
    from lem_worker.metering import lock_for_run, make_meter

    exp = cfg.experiment
    meter = make_meter(cfg, **meter_kwargs)
    lock = lock_for_run(cfg, meter, stop)
    warm_records: list[RequestRecord] = []
    try:
        lock.acquire()
        meter.start()
        baseline = meter.idle_baseline(exp.measurement.idle_baseline_s, stop)
        if stop.is_set():
            raise Terminated("stopped during the idle baseline")

        def warm_step() -> None:
            warm_records.append(warm_one(len(warm_records)))

        h = meter.begin("warmup")
        warm = run_warmup(exp.warmup, warm_step, stop)
        meter.end(h)
        if warm_records and not any(r.ok for r in warm_records):
            raise WorkerError(f"every warm-up request failed; first error: {warm_records[0].error}")
        before = scrape_metrics(sc.origin) if sc.scrape_metrics else None
        log(label)
        holder: dict[str, Any] = {}
        win_started = utc_now_iso()
        h_all = meter.begin("traffic")

        def on_start() -> None:
            holder["h"] = meter.begin("steady")

        def on_end() -> None:
            holder["win"] = meter.end(holder["h"])

        poller = MetricsPoller(sc.origin, time.perf_counter()).start() if sc.scrape_metrics else None
        run = drive_traffic(on_start, on_end)
        win_all = meter.end(h_all)
        timeline = poller.stop() if poller is not None else None
        win_ended = utc_now_iso()
        after = scrape_metrics(sc.origin) if sc.scrape_metrics else None
        if run.stopped:
            raise Terminated("stopped during the traffic")
        return assemble(cfg, sc, started_at, meter, lock, baseline, warm, warm_records, run, planned,
                        holder.get("win"), win_all, win_started, win_ended, notes, server_info, before, after, timeline)
    finally:
        meter.close()
        lock.release()


def assemble(cfg: WorkerConfig, sc: ServingCfg, started_at: str, meter: Any, lock: Any, baseline: Any,
             warm: dict[str, Any], warm_records: list[RequestRecord], run: TrafficRun, planned: Optional[int],
             steady: Optional[WindowEnergy], win_all: WindowEnergy, win_started: str, win_ended: str,
             notes: list[str], server_info: dict[str, Any], before: Any, after: Any,
             timeline: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    exp = cfg.experiment
    t = sc.traffic
    recs = run.records
    span = (max((r.end or run.start) for r in recs) - run.start) if recs else 0.0
    s = summarize(recs, span, sc.goodput)
    if recs and s["requests_completed"] == 0:
        raise WorkerError(f"every request failed; first error: {recs[0].error}")
    flags: list[Flag] = []
    formed = steady is not None and run.steady_start is not None and run.steady_end is not None
    if formed:
        assert steady is not None and run.steady_start is not None and run.steady_end is not None
        win = steady
        ws, we = run.steady_start, run.steady_end
    else:
        win = win_all
        ws, we = run.start, run.end
        flags.append(Flag("no_steady_window", "warn", "too few requests for a steady window (its end came before its "
                          "start): energy over the whole traffic span, ramp-up and drain included"))
    ms = MetricSet()
    energy = energy_block(win, baseline, ms, flags)
    inside = in_window(recs, ws, we)
    ok, failed = s["requests_completed"], s["requests_failed"]
    ms.put("requests", float(ok))
    ms.put("failed_requests", float(failed))
    ms.put("requests_sent", float(s["requests_sent"]))
    ms.put("warmup_requests", float(len(warm_records)))
    ms.put("repetitions", 1.0)
    ms.put("output_tokens", float(s["output_tokens"]) if not s["usage_missing"] else None,
           f"{s['usage_missing']} completed request(s) had no usage chunk (the server ignored stream_options.include_usage)")
    ms.put("input_tokens", float(s["input_tokens"]) if not s["usage_missing"] else None, "no usage from the server")
    ms.ratio("achieved_rate_rps", float(ok), span, "", "no request finished")
    ms.put("requests_per_s", ms.get("achieved_rate_rps"), "no request finished")
    ms.put("requested_rate_rps", t.rate_rps, "closed loop: no requested rate (concurrency-bound)")
    ms.ratio("output_tokens_per_s", ms.get("output_tokens"), span, ms.unmeasured.get("output_tokens", ""), "zero span")
    for name, key in (("ttft", "ttft_s"), ("itl", "itl_s"), ("tpot", "tpot_s"), ("e2e", "e2e_s")):
        dist = s[key]
        reason = {"ttft": "no completed request", "itl": "no request streamed 2 or more chunks",
                  "tpot": "no request with 2 or more output tokens (usage)", "e2e": "no completed request"}[name]
        ms.put(f"{name}_mean_s", dist["mean"], reason)
        for q in (50, 90, 95, 99):
            ms.put(f"{name}_p{q}_s", dist[f"p{q}"], reason)
    for q in (50, 90, 95, 99):  # the names the offline backends use for end-to-end request latency
        ms.put(f"latency_p{q}_s", ms.get(f"e2e_p{q}_s"), "no completed request")
    ms.put("latency_mean_s", ms.get("e2e_mean_s"), "no completed request")
    if s["good_requests"] is not None:
        ms.ratio("goodput_rps", float(s["good_requests"]), span, "", "zero span")
        ms.ratio("goodput_fraction", float(s["good_requests"]), float(ok), "", "no completed request")
    else:
        for k in ("goodput_rps", "goodput_fraction"):
            ms.put(k, None, "no latency targets (vllm.goodput)")
    ms.put("reasoning_tokens", None if s["reasoning_tokens"] is None else float(s["reasoning_tokens"]),
           "the server's usage does not split reasoning tokens (see serving.reasoning_chunks)")
    ms.put("steady_window_s", we - ws if formed else None, "no steady window (too few requests)")
    ms.put("window_requests", inside["requests"])
    wtok = inside["output_tokens"]
    ms.put("window_output_tokens", None if math.isnan(wtok) else wtok, "no usage from the server")
    gpu_reason = ms.unmeasured.get("energy_gpu_j", "GPU energy not measured")
    ms.ratio("j_per_output_token", ms.get("energy_gpu_raw_j"), ms.get("window_output_tokens"), gpu_reason,
             "no output tokens in the window")
    ms.ratio("j_per_output_token_adjusted", ms.get("energy_gpu_adjusted_j"), ms.get("window_output_tokens"),
             ms.unmeasured.get("energy_gpu_adjusted_j", gpu_reason), "no output tokens in the window")
    ms.ratio("j_per_request", ms.get("energy_gpu_raw_j"), inside["requests"], gpu_reason, "no request finished in the window")
    ms.ratio("j_per_request_adjusted", ms.get("energy_gpu_adjusted_j"), inside["requests"],
             ms.unmeasured.get("energy_gpu_adjusted_j", gpu_reason), "no request finished in the window")
    for k in ("energy_prefill_j", "energy_decode_j", "prefill_time_s", "j_per_output_token_decode"):
        ms.put(k, None, "serving: no prefill/decode split (requests overlap on the server)")
    validation = validation_block(cfg, win, flags, failed_requests=failed, j_per_token=ms.get("j_per_output_token"),
                                  baseline=baseline, warmup=warm)
    if failed:
        notes.append(f"{failed} request(s) failed: " + "; ".join(f"{n} x {e}" for e, n in s["errors"].items()))
    notes.append(ATTRIBUTION)
    notes.extend(meter.notes)
    rel = lambda x: None if x is None else round(x - run.start, 6)  # noqa: E731
    serving = {
        "endpoint": sc.base_url,
        "api": sc.api,
        "server": server_info,
        "traffic": dataclasses.asdict(t),
        "requests_planned": planned,
        "requests_sent": s["requests_sent"],
        "requests_completed": ok,
        "requests_failed": failed,
        "errors": s["errors"],
        "warmup_requests": len(warm_records),
        "warmup_failed": sum(1 for r in warm_records if not r.ok),
        "requested_rate_rps": t.rate_rps,
        "achieved_rate_rps": ms.get("achieved_rate_rps"),
        "output_tokens_per_s": ms.get("output_tokens_per_s"),
        "latency_s": {k: s[f"{k}_s"] for k in ("ttft", "itl", "tpot", "e2e")},
        "goodput": None if s["good_requests"] is None else {
            "targets_ms": dataclasses.asdict(sc.goodput), "good_requests": s["good_requests"],
            "goodput_rps": ms.get("goodput_rps")},
        "reasoning": {"reasoning_chunks": s["reasoning_chunks"], "content_chunks": s["content_chunks"],
                      "reasoning_tokens": s["reasoning_tokens"],
                      "note": "reasoning output counts in TTFT, ITL and output tokens; reasoning_tokens only when the "
                              "server's usage reports completion_tokens_details.reasoning_tokens"},
        "steady_window": {"formed": formed, "start_s": rel(run.steady_start) if formed else None,
                          "end_s": rel(run.steady_end) if formed else None, "duration_s": (we - ws) if formed else None,
                          "traffic_span_s": span, "last_send_s": rel(run.last_send),
                          "requests": inside["requests"], "output_tokens": ms.get("window_output_tokens"),
                          "rule": run.steady_rule},
        "energy": {"j_per_request": ms.get("j_per_request"), "j_per_output_token": ms.get("j_per_output_token"),
                   "reason": None if ms.get("j_per_output_token") is not None else ms.unmeasured.get("j_per_output_token"),
                   "attribution": ATTRIBUTION},
        "server_metrics": None if before is None else {"before": before, "after": after, "timeline": timeline},
    }
    env = base_environment()
    env.update(meter.environment())
    env["library_versions"] = {"numpy": module_version("numpy")}
    env["model"] = {"model_id": exp.model.id if exp.model else None, "served_by": sc.base_url}
    env["started_at"] = started_at
    window = {"duration_s": win.duration_s, "min_s": exp.measurement.min_window_s, "repetitions": 1,
              "short": win.duration_s < exp.measurement.min_window_s, "rule": run.steady_rule if formed else
              "whole traffic span (no steady window formed)",
              "started_at": wall_iso(ws) if formed else win_started, "ended_at": wall_iso(we) if formed else win_ended}
    workload = {"kind": "llm_serving", "prompts": exp.prompts.source, "api": sc.api,
                "max_output_tokens": exp.max_output_tokens, "fixed_length": bool(exp.decoder.fixed_length),
                "arrival": t.arrival, "rate_rps": t.rate_rps, "concurrency": t.concurrency, "requests": planned,
                "duration_s": t.duration_s, "seed": t.seed}
    ended_at = utc_now_iso()
    env["ended_at"] = ended_at
    result = build_result(cfg, started_at, ended_at, ms, energy, meter, warm, window, None, validation, env, notes,
                          workload)
    result["serving"] = serving
    result["device_lock"] = lock.record
    return result
