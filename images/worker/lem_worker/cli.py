"""Command line: `python3 -m lem_worker run CONFIG.json --out DIR`, `python3 -m lem_worker health`,
`python3 -m lem_worker thermal --json [--gpus 0,1]` and `python3 -m lem_worker calibrate --json --burn-s N`
(the last two: see thermal.py).

Exit codes: 0 success (DIR/result.json written atomically), 2 bad config, 1 runtime failure,
75 gave up waiting for a device lock (measurement.device_lock_timeout_s), 143 terminated by SIGTERM/SIGINT. On failure a one-paragraph reason goes to stderr and no
result.json is written.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Optional

from lem_worker.errors import ConfigError, Terminated, WorkerError
from lem_worker.log import log

STOP = threading.Event()


def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
    STOP.set()
    raise Terminated(f"received signal {signal.Signals(signum).name}: stopped before completion, nothing written")


def _on_alarm(signum: int, frame: Optional[FrameType]) -> None:
    STOP.set()
    raise WorkerError("measurement.timeout_s elapsed before the run completed; nothing written")


def _one_paragraph(text: str) -> str:
    return " ".join(text.split())


def _run(config_path: str, out_dir: str) -> int:
    from lem_worker.config import load_config
    from lem_worker.runner import run_experiment
    from lem_worker.resultio import write_result_atomic

    cfg = load_config(config_path)
    timeout = cfg.experiment.measurement.timeout_s
    if timeout is not None:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    log(f"run {cfg.run.run_id} experiment {cfg.run.experiment_id} backend {cfg.experiment.backend} "
        f"cycle {cfg.run.cycle} attempt {cfg.run.attempt}")
    result = run_experiment(cfg, STOP)
    if STOP.is_set():
        raise Terminated("stopped before completion, nothing written")
    path = write_result_atomic(out_dir, result)
    log(f"wrote {path}")
    from lem_worker.thermal import fake_heat

    fake_heat()  # only under the tests' fake thermal source (LEM_FAKE_THERMAL): the burn heated the fake GPU
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lem_worker", description="lem in-container worker")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run one experiment and write DIR/result.json")
    run_p.add_argument("config", help="CONFIG.json written by the orchestrator")
    run_p.add_argument("--out", required=True, help="directory for result.json")
    run_p.add_argument("--attempt-token", default=None,
                       help="the orchestrator's id of this attempt (how `campaign resume` finds a live worker)")
    serve_p = sub.add_parser("serve", help="persistent worker: runs requested on stdin, one JSON answer per line (serve.py)")
    serve_p.add_argument("--state-dir", required=True, help="directory for serve.log and current.json (the run in flight)")
    sub.add_parser("health", help="print one JSON line describing this interpreter")
    th_p = sub.add_parser("thermal", help="print one JSON line: temperature and power per GPU, or why there is none")
    th_p.add_argument("--json", action="store_true", help="JSON output (the only format)")
    th_p.add_argument("--gpus", default=None, help="comma-separated GPU indices (default: all visible)")
    cal_p = sub.add_parser("calibrate", help="idle temperature/power, counter update period, time back to idle after a burn")
    cal_p.add_argument("--json", action="store_true", help="JSON output (the only format)")
    cal_p.add_argument("--gpus", default=None, help="comma-separated GPU indices (default: all visible)")
    cal_p.add_argument("--burn-s", type=float, default=30.0, help="seconds of calibration burn")
    cal_p.add_argument("--idle-s", type=float, default=5.0, help="seconds of idle sampling before the burn")
    cal_p.add_argument("--settle-max-s", type=float, default=300.0, help="give up waiting for idle after this long")
    cov_p = sub.add_parser("coverage", help="parameter-coverage audit of this image's engine (one JSON document)")
    cov_p.add_argument("backend", choices=("pytorch", "vllm", "tensorrt"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code not in (0, None) else 0

    if args.command == "serve":
        from lem_worker.serve import serve_main

        return serve_main(args.state_dir)
    if args.command == "health":
        from lem_worker.health import print_health

        return print_health()
    if args.command == "coverage":
        import json

        from lem_worker.coverage import audit

        report = audit(args.backend)
        print(json.dumps(report))
        return 1 if report["unclassified"] or not any(c["found"] for c in report["classes"]) else 0
    if args.command in ("thermal", "calibrate"):
        import json

        from lem_worker import thermal

        gpus = [int(x) for x in args.gpus.split(",") if x.strip()] if args.gpus else None
        if args.command == "thermal":
            print(json.dumps(thermal.read_thermal(gpus)))
        else:
            print(json.dumps(thermal.calibrate(args.burn_s, args.idle_s, args.settle_max_s, gpus)))
        return 0

    if args.attempt_token:
        os.environ["LEM_ATTEMPT_TOKEN"] = args.attempt_token
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return _run(args.config, args.out)
    except Terminated as exc:
        sys.stderr.write(f"lem-worker: terminated: {_one_paragraph(str(exc))}\n")
        return exc.exit_code
    except ConfigError as exc:
        sys.stderr.write(f"lem-worker: bad config: {_one_paragraph(str(exc))}\n")
        return exc.exit_code
    except WorkerError as exc:
        sys.stderr.write(f"lem-worker: run failed: {_one_paragraph(str(exc))}\n")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - any other failure is a runtime failure with its reason
        if os.environ.get("LEM_WORKER_TRACEBACK"):
            traceback.print_exc()
        sys.stderr.write(f"lem-worker: run failed: {type(exc).__name__}: {_one_paragraph(str(exc))}\n")
        return 1
