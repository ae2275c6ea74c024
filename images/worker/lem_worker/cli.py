"""Command line: `python3 -m lem_worker run CONFIG.json --out DIR`, `python3 -m lem_worker health`,
`python3 -m lem_worker probe --json [--configs FILE|-]` (probe.py: packages the configs need, GPUs seen),
`python3 -m lem_worker thermal --json [--gpus 0,1]` and `python3 -m lem_worker calibrate --json --burn-s N`
(the last two: see thermal.py).

Exit codes (errors.py): 0 success (DIR/result.json written atomically), 1 engine_error, 2 config_error,
3 missing_dependency, 4 out_of_memory, 75 lock_timeout (measurement.device_lock_timeout_s),
143 terminated (SIGTERM/SIGINT). On failure a one-paragraph reason goes to stderr, DIR/failure.json
records the kind (failure.py), and no result.json is written. The packages the config needs are
checked (deps.py) before any model or engine is loaded.
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

from lem_worker.errors import Terminated, WorkerError
from lem_worker.failure import classify, one_paragraph, write_failure
from lem_worker.log import log

STOP = threading.Event()
#: What stderr says before the reason, by failure kind.
PREFIX = {"config_error": "bad config", "terminated": "terminated", "missing_dependency": "missing dependency",
          "out_of_memory": "out of memory", "lock_timeout": "device lock timeout"}


def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
    STOP.set()
    raise Terminated(f"received signal {signal.Signals(signum).name}: stopped before completion, nothing written")


def _on_alarm(signum: int, frame: Optional[FrameType]) -> None:
    STOP.set()
    raise WorkerError("measurement.timeout_s elapsed before the run completed; nothing written")


def _run(config_path: str, out_dir: str) -> int:
    from lem_worker.config import load_config
    from lem_worker.runner import run_experiment
    from lem_worker.resultio import write_result_atomic

    from lem_worker import deps

    from lem_worker.serving.settings import check_traffic_backend

    cfg = load_config(config_path)
    check_traffic_backend(cfg.experiment)  # a config error outranks a missing package: the config is wrong anywhere
    deps.check(cfg.experiment.raw)  # before any model or engine loads: a missing package fails now, once
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
    if argv[:1] == ["run"] and "--result-stdout" in argv:  # srun: config on stdin, result framed on stdout
        from lem_worker.framing import framed_run

        return framed_run(argv, main)
    parser = argparse.ArgumentParser(prog="python3 -m lem_worker", description="lem in-container worker")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run one experiment and write DIR/result.json")
    run_p.add_argument("config", help="CONFIG.json written by the orchestrator")
    run_p.add_argument("--out", required=True, help="directory for result.json")
    run_p.add_argument("--result-stdout", action="store_true",
                       help="CONFIG may be - (stdin); result files come back framed on stdout, the log on stderr (framing.py)")
    run_p.add_argument("--attempt-token", default=None,
                       help="the orchestrator's id of this attempt (how `campaign resume` finds a live worker)")
    serve_p = sub.add_parser("serve", help="persistent worker: runs requested on stdin, one JSON answer per line (serve.py)")
    serve_p.add_argument("--state-dir", required=True, help="directory for serve.log and current.json (the run in flight)")
    sub.add_parser("health", help="print one JSON line describing this interpreter")
    sub.add_parser("serving-stop", help="stop the `vllm serve` processes lem started (vllm.mode: server); one JSON line")
    pr_p = sub.add_parser("probe", help="print one JSON line: packages the configs need (installed or not), GPUs seen")
    pr_p.add_argument("--json", action="store_true", help="JSON output (the only format)")
    pr_p.add_argument("--configs", default=None, help="JSON array of experiment configs (file, or - for stdin)")
    pr_p.add_argument("--no-gpus", action="store_true", help="do not look for GPUs")
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
    if args.command == "serving-stop":
        from lem_worker.serving.manage import serving_stop_main

        return serving_stop_main()
    if args.command == "health":
        from lem_worker.health import print_health

        return print_health()
    if args.command == "coverage":
        import json

        from lem_worker.coverage import audit

        report = audit(args.backend)
        print(json.dumps(report))
        return 1 if report["unclassified"] or not any(c["found"] for c in report["classes"]) else 0
    if args.command == "probe":
        from lem_worker.errors import ConfigError
        from lem_worker.probe import print_probe

        try:
            return print_probe(args.configs, not args.no_gpus)
        except ConfigError as exc:
            sys.stderr.write(f"lem-worker: bad probe input: {one_paragraph(str(exc))}\n")
            return exc.exit_code
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
    except Exception as exc:  # noqa: BLE001 - every failure (Terminated included) is classified, recorded and reported
        if os.environ.get("LEM_WORKER_TRACEBACK") and not isinstance(exc, WorkerError):
            traceback.print_exc()
        failure = classify(exc)
        write_failure(args.out, failure)
        sys.stderr.write(f"lem-worker: {PREFIX.get(failure.kind, 'run failed')}: {failure.message}\n")
        return failure.exit_code
