"""The offline vLLM engine under seeded traffic: each prompt is submitted to the engine at its arrival time
and the engine is stepped in between, so the measured run looks like a served model without HTTP.

Written against vLLM's documented engine API (docs.vllm.ai, `vllm.v1.engine.llm_engine.LLMEngine`, the
engine `LLM` wraps as `LLM.llm_engine`; the V1 engine of the release images/versions.env pins):
* `add_request(request_id, prompt, params)`: prompt a TokensPrompt (`{"prompt_token_ids": [...]}`),
  params a `SamplingParams` (default output kind CUMULATIVE: each output carries every token so far);
* `step() -> list[RequestOutput]`: one engine iteration; an output per request that progressed, with
  `request_id`, `outputs[0].token_ids`, `outputs[0].finish_reason`, `prompt_token_ids` and `finished`;
* `has_unfinished_requests()`; `abort_request(request_ids)` on a stop.
step() is only called while requests are unfinished (it waits for engine output otherwise).

Timing: a request's send stamp is taken just before add_request, a token's stamp when the step() that
returned it returns (the engine's output granularity, as a stream chunk is for a server): TTFT, the gaps
between steps that added tokens (ITL), TPOT and E2E are per request, exactly as serving/stats.py computes
them for streamed requests. The arrival processes, the steady-window rule and the `serving` block are
serving's own (serving/traffic.py, driver.SteadyMarker, run.assemble).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Optional

from lem_worker.batching import Request
from lem_worker.config import WorkerConfig
from lem_worker.errors import Terminated, WorkerError
from lem_worker.serving.client import RequestRecord
from lem_worker.serving.driver import SteadyMarker, TrafficRun
from lem_worker.serving.settings import ServingCfg, TrafficCfg, goodput_cfg, traffic_cfg
from lem_worker.serving.traffic import arrival_offsets, open_loop_count, planned_requests

ENGINE_ENDPOINT = "vllm.LLMEngine (in-process, offline: add_request at each arrival, step() between)"


class EngineTraffic:
    """Feeds one engine: submissions, steps, and the request records they produce (single-threaded: the
    engine is not thread-safe; only the steady-window meter calls run on the marker's thread)."""

    def __init__(self, engine: Any, sp: Any, prompts: list[Request], tag: str) -> None:
        self.engine = engine
        self.sp = sp
        self.prompts = prompts
        self.tag = tag
        self.live: dict[str, RequestRecord] = {}
        self.seen: dict[str, int] = {}
        self.serial = 0

    def submit(self, i: int, warm: bool = False, scheduled: Optional[float] = None) -> Optional[RequestRecord]:
        """add_request for prompt i; a refused request is returned failed (the run goes on)."""
        self.serial += 1
        rid = f"{self.tag}-{'w' if warm else 'm'}{self.serial}"
        rec = RequestRecord(index=i, warmup=warm, scheduled_s=scheduled)
        ids = list(self.prompts[i % len(self.prompts)].input_ids)
        rec.sent = time.perf_counter()
        try:
            self.engine.add_request(rid, {"prompt_token_ids": ids}, self.sp)
        except Exception as exc:  # noqa: BLE001 - one refused request fails only itself
            rec.end = time.perf_counter()
            rec.error = f"add_request: {type(exc).__name__}: {exc}"[:200]
            return rec
        self.live[rid] = rec
        self.seen[rid] = 0
        return None

    def step(self, on_first: Any = None) -> list[RequestRecord]:
        """One engine step; returns the records of requests that finished in it."""
        try:
            outs = self.engine.step()
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001 - the engine itself failed: no later request can run
            raise WorkerError(f"vLLM engine step() failed: {type(exc).__name__}: {exc}") from None
        stamp = time.perf_counter()
        done: list[RequestRecord] = []
        for out in outs:
            rid = str(getattr(out, "request_id", ""))
            rec = self.live.get(rid)
            if rec is None:
                continue
            comp = out.outputs[0] if getattr(out, "outputs", None) else None
            n = len(comp.token_ids) if comp is not None else 0
            if n > self.seen[rid]:
                self.seen[rid] = n
                if rec.first_token is None:
                    rec.first_token = stamp
                    if on_first is not None:
                        on_first()
                rec.chunk_times.append(stamp)
                rec.content_chunks += 1
            if not getattr(out, "finished", False):
                continue
            rec.end = stamp
            rec.completion_tokens = n
            prompt_ids = getattr(out, "prompt_token_ids", None)
            rec.prompt_tokens = len(prompt_ids) if prompt_ids is not None else None
            reason = getattr(comp, "finish_reason", None)
            if reason == "abort":
                rec.error = "the engine aborted the request"
            elif rec.first_token is None:
                rec.error = "the request finished without a token"
            else:
                rec.ok = True
            del self.live[rid]
            del self.seen[rid]
            done.append(rec)
        return done

    def abort_all(self) -> None:
        if self.live:
            try:
                self.engine.abort_request(list(self.live))
            except Exception:  # noqa: BLE001 - best effort on a stop
                pass

    def one(self, i: int, stop: threading.Event) -> RequestRecord:
        """A request on its own, stepped to the end (warm-up)."""
        failed = self.submit(i, warm=True)
        if failed is not None:
            return failed
        while True:
            if stop.is_set():
                self.abort_all()
                raise Terminated("stopped during warm-up")
            for rec in self.step():
                return rec


def drive_engine(feed: EngineTraffic, t: TrafficCfg, planned: Optional[int], on_start: Any, on_end: Any,
                 stop: threading.Event) -> TrafficRun:
    """Open loop: submit request i at offsets[i] (concurrency caps requests in flight); closed loop: keep
    `concurrency` requests in flight. Steps the engine whenever requests are unfinished."""
    run = TrafficRun()
    marker = SteadyMarker(t, planned, run)
    window = marker.window_thread(on_start, on_end)
    offsets = arrival_offsets(t, open_loop_count(t, planned)) if t.open_loop else None
    cap = t.concurrency if t.open_loop else (t.concurrency or 1)
    run.start = time.perf_counter()
    deadline = None if t.duration_s is None else run.start + t.duration_s
    i = 0
    sending = True

    def finish(rec: RequestRecord) -> None:
        run.records.append(rec)
        marker.finished_one()

    while True:
        if stop.is_set():
            feed.abort_all()
            run.stopped = True
            break
        now = time.perf_counter()
        while sending:
            if offsets is not None:
                if i >= len(offsets) or (deadline is not None and run.start + float(offsets[i]) > deadline):
                    sending = False
                    break
                if run.start + float(offsets[i]) > now or (cap is not None and len(feed.live) >= cap):
                    break
            else:
                if (planned is not None and i >= planned) or (deadline is not None and now >= deadline):
                    sending = False
                    break
                if cap is not None and len(feed.live) >= cap:
                    break
            run.last_send = time.perf_counter()
            failed = feed.submit(i, scheduled=None if offsets is None else float(offsets[i]))
            i += 1
            if failed is not None:
                finish(failed)
        if not sending:
            marker.sending_over()
        if feed.live:
            for rec in feed.step(marker.first_token):
                finish(rec)
        elif not sending:
            break
        elif offsets is not None and i < len(offsets):
            stop.wait(max(0.0, min(run.start + float(offsets[i]) - time.perf_counter(), 0.05)))
    marker.close()
    window.join()
    run.end = time.perf_counter()
    run.records.sort(key=lambda r: r.index)
    return run


def run_engine_traffic(cfg: WorkerConfig, stop: threading.Event, llm: Any, sp: Any, prompts: list[Request],
                       sampling: dict[str, Any], versions: dict[str, Any], notes: list[str], started_at: str,
                       **meter_kwargs: Any) -> dict[str, Any]:
    """The measurement: meter start -> idle baseline -> warm-up requests (one at a time) -> traffic with the
    steady window opened and closed live -> serving's `serving` block and the v3 result."""
    from lem_worker.serving.run import measure_traffic

    exp = cfg.experiment
    engine = getattr(llm, "llm_engine", None)
    if engine is None or not all(hasattr(engine, m) for m in ("add_request", "step", "has_unfinished_requests")):
        raise WorkerError("this vLLM's LLM has no llm_engine with add_request/step/has_unfinished_requests: "
                          "traffic needs per-request submission (measure a server with vllm.endpoint instead)")
    t = traffic_cfg(exp.raw)
    v = exp.raw.get("vllm") or {}
    sc = ServingCfg(base_url=ENGINE_ENDPOINT, origin="", managed=False, api="engine",
                    goodput=goodput_cfg(v if isinstance(v, dict) else {}), scrape_metrics=False,
                    server_start_timeout_s=0.0, traffic=t)
    planned = planned_requests(t, len(prompts))
    feed = EngineTraffic(engine, sp, prompts, f"lem-{cfg.run.run_id}")
    tp = exp.vllm.tensor_parallel_size
    if exp.measurement.gpu_ids is None:
        cfg = dataclasses.replace(cfg, experiment=dataclasses.replace(
            exp, measurement=dataclasses.replace(exp.measurement, gpu_ids=list(range(tp)))))
        notes.append(f"measuring the GPU(s) vLLM runs on: CUDA device(s) {list(range(tp))} (tensor_parallel_size {tp})")
    notes.append("offline engine under traffic: each prompt submitted with LLMEngine.add_request at its arrival time, "
                 "the engine stepped in between; token times are the returns of the step() that produced them")
    server_info = {"engine": "vllm.LLMEngine", "submission": "add_request at the arrival time, step() loop",
                   "sampling": sampling}
    label = (f"vllm offline traffic: {t.arrival}" + (f" at {t.rate_rps:g} req/s" if t.rate_rps else "")
             + (f", {planned} request(s)" if planned is not None else f", for {t.duration_s:g}s"))
    result = measure_traffic(
        cfg, sc, stop, started_at, notes, server_info, planned, label,
        warm_one=lambda i: feed.one(i, stop),
        drive_traffic=lambda on_start, on_end: drive_engine(feed, t, planned, on_start, on_end, stop),
        **meter_kwargs)
    result["environment"]["library_versions"].update(versions)
    result["environment"]["model"]["served_by"] = "vllm offline engine (in-process)"
    result["workload"]["kind"] = "llm_offline_traffic"
    result["workload"]["engine"] = "vllm"
    result["serving"]["reasoning"]["note"] = "offline engine: outputs are token ids (detokenize off); reasoning not split"
    return result
