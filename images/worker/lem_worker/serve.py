"""`python3 -m lem_worker serve --state-dir DIR`: the persistent worker.

One long-lived process per backend (local runtime) or per service container (docker runtime). It
reads one JSON request per line on stdin and answers one JSON line on its original stdout (the
control channel); a run's own output (stdout, stderr, the worker's log lines) goes to the run's log
file, which the worker opens itself so the log is complete even if lem is killed.

  -> {"op": "ready", "pid": N, "start_s": S, "start_ticks": T}           once, at start
  <- {"op": "run", "config": PATH, "out": DIR, "log": PATH, "attempt_token": T, "cold_start": B}
  -> {"op": "started"}                                                    the request reached a live worker
  -> {"op": "done", "exit_code": 0|1|2|3|4|75|143, "kind": "ok"|"engine_error"|..., "message": M,
      "engine": {...} | null, "recycle": B}

Runs share the engine cache (engines.py). While a run is in flight DIR/current.json names it
(attempt token, pid, run id): that is how lem finds and stops the running attempt of a campaign
(there is no per-run process whose command line carries the token). Isolation: after an
out-of-memory failure or any unexpected error the cache is dropped and the worker exits after
answering (`recycle`), so the next run gets a fresh process; SIGTERM ends the run (exit 143) and
then the worker; EOF on stdin (lem went away) ends it after the run in flight.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Optional

from lem_worker.engines import CACHE, RunContext, is_out_of_memory
from lem_worker.errors import ConfigError, Terminated, WorkerError

STOP = threading.Event()
KINDS = {0: "ok", 1: "engine_error", 2: "config_error", 3: "missing_dependency", 4: "out_of_memory",
         75: "lock_timeout", 143: "terminated"}


class _State:
    running = False
    terminate = False


def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
    _State.terminate = True
    STOP.set()
    if _State.running:
        raise Terminated(f"received signal {signal.Signals(signum).name}: stopped before completion, nothing written")
    raise SystemExit(143)


def _on_alarm(signum: int, frame: Optional[FrameType]) -> None:
    STOP.set()
    raise WorkerError("measurement.timeout_s elapsed before the run completed; nothing written")


def process_start() -> tuple[Optional[float], Optional[str]]:
    """(seconds since this process started, its start time in clock ticks as /proc/PID/stat field
    22 has it: with the pid, what identifies this process for a kill), or None where /proc is unreadable."""
    try:
        with open("/proc/self/stat", "r", encoding="ascii") as fh:
            ticks = fh.read().rsplit(")", 1)[1].split()[19]
        with open("/proc/uptime", "r", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - int(ticks) / os.sysconf("SC_CLK_TCK")), ticks
    except (OSError, ValueError, IndexError):
        return None, None


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, kind) of a failed run, with the kinds and codes the per-run worker uses."""
    if is_out_of_memory(exc):
        return 4, "out_of_memory"
    if isinstance(exc, ImportError):
        return 3, "missing_dependency"
    code = getattr(exc, "exit_code", 1) if isinstance(exc, WorkerError) else 1
    code = code if isinstance(code, int) and code in KINDS else 1
    return code, KINDS[code]


def _write_json(path: str, body: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(body, fh)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _failure_file(out_dir: str, code: int, kind: str, message: str) -> None:
    try:
        _write_json(os.path.join(out_dir, "failure.json"), {"schema": "lem.failure/1", "kind": kind, "exit_code": code,
                                                            "message": message, "detail": {"worker": "persistent"}})
    except OSError:
        pass


def _execute(req: dict[str, Any]) -> None:
    from lem_worker.config import load_config
    from lem_worker.log import log
    from lem_worker.resultio import write_result_atomic
    from lem_worker.runner import run_experiment
    from lem_worker.thermal import fake_heat

    cfg = load_config(str(req["config"]))
    timeout = cfg.experiment.measurement.timeout_s
    if timeout is not None:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    log(f"run {cfg.run.run_id} experiment {cfg.run.experiment_id} backend {cfg.experiment.backend} "
        f"cycle {cfg.run.cycle} attempt {cfg.run.attempt} (persistent worker pid {os.getpid()})")
    result = run_experiment(cfg, STOP)
    signal.setitimer(signal.ITIMER_REAL, 0)
    if STOP.is_set():
        raise Terminated("stopped before completion, nothing written")
    path = write_result_atomic(str(req["out"]), result)
    log(f"wrote {path}")
    fake_heat()


def handle_run(req: dict[str, Any], state_dir: str, ctx: RunContext, home_fd: int) -> dict[str, Any]:
    """Runs one request with fd 1/2 on the run's log; always answers (a crash of the process aside)."""
    token = str(req.get("attempt_token") or "")
    current = os.path.join(state_dir, "current.json")
    _write_json(current, {"attempt_token": token, "pid": os.getpid(), "config": req.get("config"),
                          "since": time.time()})
    os.environ["LEM_ATTEMPT_TOKEN"] = token
    sys.stdout.flush()
    sys.stderr.flush()
    log_fd = os.open(str(req["log"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    STOP.clear()
    CACHE.begin_run(ctx)
    code, kind, message, recycle = 0, "ok", "", False
    try:
        _State.running = True
        try:
            _execute(req)
        finally:
            _State.running = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except Exception as exc:  # noqa: BLE001 - every failure is answered with its kind
        code, kind = classify(exc)
        message = " ".join(str(exc).split()) or type(exc).__name__
        label = {"terminated": "terminated", "config_error": "bad config"}.get(kind, "run failed")
        prefix = "" if isinstance(exc, WorkerError) else f"{type(exc).__name__}: "
        sys.stderr.write(f"lem-worker: {label}: {prefix}{message}\n")
        _failure_file(str(req["out"]), code, kind, message)
        if kind not in ("config_error", "lock_timeout", "missing_dependency"):
            CACHE.clear()  # OOM, engine error, timeout, terminated: the engine may be half-used; drop it
            recycle = True  # and a fresh process for the next run, so every byte is given back
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(home_fd, 1)
        os.dup2(home_fd, 2)
        _remove(current)
    # A run that did not use the engine cache (server mode: the engine is `vllm serve`, which outlives the
    # worker) keeps nothing worth a process: recycle.
    recycle = recycle or _State.terminate or (code == 0 and ctx.record is None)
    return {"op": "done", "exit_code": code, "kind": kind, "message": message, "engine": ctx.record, "recycle": recycle}


def serve_main(state_dir: str) -> int:
    os.makedirs(state_dir, exist_ok=True)
    control = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    home_fd = os.open(os.path.join(state_dir, "serve.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(home_fd, 1)
    os.dup2(home_fd, 2)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    start_s, start_ticks = process_start()
    import lem_worker.runner  # noqa: F401 - the imports every run needs, paid once

    def send(body: dict[str, Any]) -> None:
        try:
            control.write(json.dumps(body) + "\n")
            control.flush()
        except (OSError, ValueError):
            pass  # lem went away: the run's files are what count

    send({"op": "ready", "pid": os.getpid(), "start_s": start_s, "start_ticks": start_ticks})
    served = 0
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError:
                send({"op": "error", "message": "request is not JSON"})
                continue
            if not isinstance(req, dict) or req.get("op") == "exit":
                break
            served += 1
            send({"op": "started"})  # lem knows the run reached a live worker (not one that died idle)
            ctx = RunContext(worker="persistent", cold_start=bool(req.get("cold_start")), runs_served=served,
                             worker_start_s=start_s)
            answer = handle_run(req, state_dir, ctx, home_fd)
            send(answer)
            if answer["recycle"]:
                return int(answer["exit_code"]) if answer["kind"] == "terminated" else 0
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 143
    except ConfigError:
        return 2
    return 0
