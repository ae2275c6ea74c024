"""The engine cache: loaded engines (a model, a calibration burn) kept between runs of one worker.

A backend asks `acquire(key, load)` for its engine; `key` is the engine configuration (backend,
model id + revision, dtype, quantisation, engine arguments) as a JSON-able value. In a persistent
worker (`python3 -m lem_worker serve`) runs with the same key reuse the loaded engine; in a per-run
worker (`python3 -m lem_worker run`) the cache starts empty, so every run loads (and vLLM/TensorRT-LLM
release theirs at the end of the run: `release_unless_persistent`). Each run records what happened in
its result as `engine` (see `RunContext.record`). An engine that holds device memory outside Python
references passes `release` (vLLM: engine-core shutdown + parallel-state cleanup; TensorRT-LLM:
`LLM.shutdown()`), called whenever it leaves the cache: another key, a failed or out-of-memory run.

A fake engine for tests (LEM_FAKE_ENGINE=JSON, tests only): every load sleeps `load_s` seconds and
appends a line to `loads_file`; a run whose experiment id contains `oom_on` fails like a CUDA
out-of-memory error, and one whose experiment id contains `crash_on` kills its worker (SIGKILL).
"""
from __future__ import annotations

import gc
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")

FAKE_ENV = "LEM_FAKE_ENGINE"


class FakeOutOfMemoryError(MemoryError):
    """What the fake engine raises for `oom_on` (stands in for torch.cuda.OutOfMemoryError)."""


@dataclass
class Entry:
    engine: Any
    loads_s: float
    uses: int = 1  # runs that used it, the loading run included
    release: Optional[Callable[[Any], None]] = None  # gives the engine's device memory back (vllm, tensorrt)


@dataclass
class RunContext:
    """What the worker around a run knows (mode, pid, cold start), and what the run's acquire did."""

    worker: str = "per_run"
    cold_start: bool = False
    runs_served: int = 1
    worker_start_s: Optional[float] = None
    experiment_id: str = ""
    record: Optional[dict[str, Any]] = None
    extra: dict[str, Any] = field(default_factory=dict)


class EngineCache:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.ctx = RunContext()

    def begin_run(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def acquire(self, key: Any, load: Callable[[], T], reuse: bool = True,
                release: Optional[Callable[[T], None]] = None) -> tuple[T, dict[str, Any]]:
        """The engine for `key` (loaded now, or reused), and the run's `engine` record. reuse=False
        always loads (a caller-supplied loader the key cannot describe). `release(engine)` is called when
        the engine leaves the cache (another key, an out-of-memory or failed run, the end of a per-run
        worker's run): for engines that hold device memory outside Python references (vLLM's engine core,
        TensorRT-LLM's executor)."""
        k = json.dumps(key, sort_keys=True, default=str)
        fake = fake_config()
        entry = self.entries.get(k) if reuse else None
        loaded = entry is None
        if entry is None:
            # One engine at a time: a different configuration evicts the previous one first, so two
            # models never share the device memory.
            self.clear()
            t0 = time.perf_counter()
            if fake is not None:
                _fake_load(fake)
            engine = load()
            entry = Entry(engine, time.perf_counter() - t0, release=release)
            self.entries[k] = entry
        else:
            entry.uses += 1
        if fake is not None:
            _fake_fail(fake, self.ctx.experiment_id)
        c = self.ctx
        record: dict[str, Any] = {
            "worker": c.worker,
            "worker_pid": os.getpid(),
            "worker_runs": c.runs_served,
            "cold_start": c.cold_start,
            "key": k,
            "loaded_for_run": loaded,
            "reuse_count": entry.uses - 1,
            "load_s": entry.loads_s if loaded else None,
            "load_s_reason": None if loaded else "engine reused from an earlier run of this worker: not loaded for this run",
            "worker_start_s": c.worker_start_s if c.cold_start else None,
            # the cold path: the first request after a load (a backend with requests fills it in)
            "first_request_s": None,
            "first_request_reason": "no request-level workload (calibration)" if loaded else "engine reused: no first request after a load",
            "load_energy_j": None,
            "load_energy_reason": "not measured: the meter starts after the engine load (outside the device lock)",
        }
        c.record = record
        return entry.engine, record

    def clear(self) -> None:
        """Drops every cached engine and gives its memory back (GPU memory too, when torch is loaded): each
        engine's own release first, then gc and torch.cuda.empty_cache."""
        entries = list(self.entries.values())
        self.entries.clear()
        for entry in entries:
            if entry.release is not None:
                try:
                    entry.release(entry.engine)
                except Exception as exc:  # noqa: BLE001 - the engine is dropped whatever its release says
                    sys.stderr.write(f"lem-worker: releasing a cached engine failed: {type(exc).__name__}: {exc}\n")
            entry.engine = None
        del entries
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None:
            try:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001 - best effort
                pass


CACHE = EngineCache()


def release_unless_persistent() -> None:
    """End of a run in a per-run worker (`python3 -m lem_worker run`, or a backend called in-process): nothing
    reuses its engine, so release it now rather than at interpreter exit. A persistent worker keeps it."""
    if CACHE.ctx.worker != "persistent":
        CACHE.clear()


def note_first_request(record: dict[str, Any], warmup: Optional[dict[str, Any]]) -> None:
    """Fills in the cold path's first-request latency: the first warm-up iteration after a load."""
    durations = warmup.get("durations_s") if isinstance(warmup, dict) else None
    if not record.get("loaded_for_run"):
        return
    if isinstance(durations, list) and durations:
        record["first_request_s"] = float(durations[0])
        record["first_request_reason"] = None
    else:
        record["first_request_reason"] = "no warm-up iteration ran after the load (warmup.iterations is 0)"


def fake_config() -> Optional[dict[str, Any]]:
    raw = os.environ.get(FAKE_ENV)
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
    except ValueError:
        return None
    return cfg if isinstance(cfg, dict) else None


def _fake_load(fake: dict[str, Any]) -> None:
    time.sleep(float(fake.get("load_s", 0.0)))
    path = fake.get("loads_file")
    if isinstance(path, str) and path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")


def _fake_fail(fake: dict[str, Any], experiment_id: str) -> None:
    crash = fake.get("crash_on")
    if isinstance(crash, str) and crash and crash in experiment_id:
        os.kill(os.getpid(), signal.SIGKILL)
    oom = fake.get("oom_on")
    if isinstance(oom, str) and oom and oom in experiment_id:
        raise FakeOutOfMemoryError("fake engine: CUDA out of memory. Tried to allocate 2.00 GiB (LEM_FAKE_ENGINE oom_on)")


def is_out_of_memory(exc: BaseException) -> bool:
    """A (CUDA or host) out-of-memory failure, whatever library raised it."""
    if isinstance(exc, MemoryError) or getattr(exc, "exit_code", None) == 4:
        return True
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()
