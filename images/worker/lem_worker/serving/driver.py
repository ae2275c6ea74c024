"""Runs the traffic: closed loop (`concurrency` workers) or open loop (a thread per arrival at its seeded
offset, `concurrency` capping requests in flight), and marks the steady window live so the meter can
open and close it on time.

Steady window (after ML.ENERGY's serving benchmark, which sends every request at once with B = the
server's max batch: the window starts when B requests have their first token and ends when N - B - 1
requests have finished):
- closed loop, B = concurrency: starts when B requests have their first token; ends when N - B - 1
  measured requests have finished (with duration_s and no request count: when sending stops).
- open loop: starts when the first request has finished (the in-flight count has had one request
  lifetime to build up); ends when the last request is sent (what follows is the drain).
When the end condition comes before the start (too few requests), there is no steady window: the
run's energy falls back to the whole traffic span and the result says so.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from lem_worker.serving.client import RequestRecord
from lem_worker.serving.settings import TrafficCfg
from lem_worker.serving.traffic import arrival_offsets, open_loop_count


@dataclass
class TrafficRun:
    records: list[RequestRecord] = field(default_factory=list)
    start: float = 0.0
    last_send: Optional[float] = None
    end: float = 0.0
    steady_start: Optional[float] = None
    steady_end: Optional[float] = None
    steady_rule: str = ""
    stopped: bool = False


class SteadyMarker:
    """Counts first tokens / completions / sends and signals the window's start and end once each, in order.
    The request threads only set events; a separate thread runs the (possibly slow) meter calls, so
    marking never delays a stream."""

    def __init__(self, t: TrafficCfg, planned: Optional[int], run: TrafficRun) -> None:
        self.lock = threading.Lock()
        self.t = t
        self.planned = planned
        self.run = run
        self.first_tokens = 0
        self.finished = 0
        self.start_ev = threading.Event()
        self.end_ev = threading.Event()
        if not t.open_loop and planned is not None and planned - (t.concurrency or 1) - 1 <= 0:
            self.end_ev.set()  # N - B - 1 <= 0: the end condition holds before the start: no steady window
        if t.open_loop:
            run.steady_rule = ("open loop: from the first finished request (in-flight count built up over one request "
                               "lifetime) to the last send (then the drain)")
        else:
            b = t.concurrency or 1
            run.steady_rule = (f"closed loop, B = concurrency {b}: from the B-th first token to the (N - B - 1)-th finished "
                               "request (ML.ENERGY's steady state)" + ("" if planned is not None else
                                                                        "; with duration_s only: to the end of sending"))

    def _begin(self) -> None:
        if not self.end_ev.is_set():
            self.start_ev.set()

    def _finish(self) -> None:
        self.end_ev.set()

    def first_token(self) -> None:
        with self.lock:
            self.first_tokens += 1
            if not self.t.open_loop and self.first_tokens >= (self.t.concurrency or 1):
                self._begin()

    def finished_one(self) -> None:
        with self.lock:
            self.finished += 1
            if self.t.open_loop:
                self._begin()
            elif self.planned is not None and self.finished >= self.planned - (self.t.concurrency or 1) - 1:
                self._finish()

    def sending_over(self) -> None:
        with self.lock:
            if self.t.open_loop or self.planned is None:
                self._finish()

    def close(self) -> None:
        with self.lock:
            self._finish()

    def window_thread(self, on_start: Callable[[], None], on_end: Callable[[], None]) -> threading.Thread:
        """Opens the window (on_start) when signalled, closes it (on_end) when signalled; an end before any
        start means no steady window. Stamps are taken when the meter calls return."""

        def body() -> None:
            while not self.start_ev.wait(0.01):
                if self.end_ev.is_set():
                    return
            if self.end_ev.is_set() and not self.start_ev.is_set():
                return
            on_start()
            self.run.steady_start = time.perf_counter()
            self.end_ev.wait()
            on_end()
            self.run.steady_end = time.perf_counter()

        th = threading.Thread(target=body, daemon=True)
        th.start()
        return th


def drive(t: TrafficCfg, planned: Optional[int], send: Callable[[int, Callable[[], None]], RequestRecord],
          on_start: Callable[[], None], on_end: Callable[[], None], stop: threading.Event) -> TrafficRun:
    """Runs the traffic; `send(i, on_first_token)` performs measured request i and returns its record."""
    run = TrafficRun()
    marker = SteadyMarker(t, planned, run)
    window = marker.window_thread(on_start, on_end)
    lock = threading.Lock()
    run.start = time.perf_counter()
    deadline = None if t.duration_s is None else run.start + t.duration_s

    def one(i: int, scheduled: Optional[float], gate: Optional[threading.Semaphore]) -> None:
        try:
            rec = send(i, marker.first_token)
            rec.scheduled_s = scheduled
            with lock:
                run.records.append(rec)
            marker.finished_one()
        finally:
            if gate is not None:
                gate.release()

    if t.open_loop:
        n = open_loop_count(t, planned)
        offsets = arrival_offsets(t, n)
        gate = threading.Semaphore(t.concurrency) if t.concurrency else None
        threads: list[threading.Thread] = []
        for i, off in enumerate(offsets):
            at = run.start + float(off)
            if deadline is not None and at > deadline:
                break
            while not stop.is_set():
                left = at - time.perf_counter()
                if left <= 0:
                    break
                stop.wait(min(left, 0.05))
            if stop.is_set():
                run.stopped = True
                break
            if gate is not None:
                gate.acquire()
            run.last_send = time.perf_counter()
            th = threading.Thread(target=one, args=(i, float(off), gate), daemon=True)
            th.start()
            threads.append(th)
        marker.sending_over()
        for th in threads:
            th.join()
    else:
        counter = [0]

        def worker() -> None:
            while not stop.is_set():
                with lock:
                    i = counter[0]
                    if (planned is not None and i >= planned) or (deadline is not None and time.perf_counter() >= deadline):
                        return
                    counter[0] += 1
                    run.last_send = time.perf_counter()
                one(i, None, None)

        timer = None
        if deadline is not None and planned is None:  # duration only: the window ends when sending stops
            timer = threading.Timer(t.duration_s or 0.0, marker.sending_over)
            timer.daemon = True
            timer.start()
        workers = [threading.Thread(target=worker, daemon=True) for _ in range(t.concurrency or 1)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if timer is not None:
            timer.cancel()
        run.stopped = stop.is_set()
        marker.sending_over()
    marker.close()
    window.join()
    run.end = time.perf_counter()
    run.records.sort(key=lambda r: r.index)
    return run
