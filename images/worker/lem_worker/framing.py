"""`run - --result-stdout`: config on stdin, result files framed on stdout, log on stderr.

How the Slurm runtime runs a worker through `srun` without a shared filesystem: the orchestrator
pipes config.json into the step's stdin; everything the run prints goes to stderr (the run's log);
at exit every file the run wrote into its (temporary) output directory — result.json, failure.json —
comes back on the real stdout as a frame, followed by a `placement.json` frame saying where the run
ran (host, Slurm job/step, the GPUs it was given, by UUID where NVML can tell):

    @@lem-frame/1 NAME BYTES SHA256
    <BYTES bytes of the file>
    @@lem-frame-end NAME

The orchestrator checks each frame's length and SHA-256 (src/runtime/slurm/frames.ts reads them).
The exit code is the run's own (0, 1, 2, …, 143), which srun passes on.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
from typing import Any, Callable

FRAME = "@@lem-frame/1"
FRAME_END = "@@lem-frame-end"
#: Slurm's step environment, recorded as is (the GPU indices are Slurm's, the UUIDs NVML's).
SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURMD_NODENAME", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS",
              "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL")


def frame(name: str, data: bytes) -> bytes:
    head = f"{FRAME} {name} {len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()
    return head + data + f"\n{FRAME_END} {name}\n".encode()


def visible_gpus(nvml: Any = None) -> dict[str, Any]:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES, as Slurm set it), by UUID through NVML,
    or why they cannot be named. `nvml`: pynvml or a stand-in (tests)."""
    from lem_worker.energy.nvml import NvmlSession, import_pynvml

    nv, reason = (nvml, None) if nvml is not None else import_pynvml()
    if nv is None:
        return {"gpus": None, "reason": reason}
    session = NvmlSession(nv, None)
    try:
        gpus = [{"logical_index": g.logical_index, "nvml_index": g.nvml_index, "uuid": g.uuid, "name": g.name} for g in session.gpus]
        return {"gpus": gpus if gpus else None, "reason": session.reason}
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:  # noqa: BLE001 - best effort
            pass


def placement() -> dict[str, Any]:
    env = {k: os.environ[k] for k in SLURM_VARS if k in os.environ}
    return {"schema": "lem.placement/1", "host": socket.gethostname(), "env": env, **visible_gpus()}


def framed_run(argv: list[str], main: Callable[[list[str]], int]) -> int:
    """Runs `main(argv)` (a `run` command) with the config from stdin when it is `-`, its output
    directory a temporary one, stdout sent to stderr; then frames the files it wrote onto stdout."""
    real_out = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)  # anything the run prints lands in the log, never inside the frames
    tmp = tempfile.mkdtemp(prefix="lem-run-")
    code = 1
    try:
        args = [a for a in argv if a != "--result-stdout"]
        if "--out" in args:
            i = args.index("--out")
            del args[i:i + 2]
        if "-" in args:
            cfg = os.path.join(tmp, "config.json")
            with open(cfg, "wb") as f:
                f.write(sys.stdin.buffer.read())
            args[args.index("-")] = cfg
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        code = main(args + ["--out", out])
    finally:
        try:
            out = os.path.join(tmp, "out")
            names = sorted(n for n in os.listdir(out) if os.path.isfile(os.path.join(out, n))) if os.path.isdir(out) else []
            chunks: list[bytes] = []
            for n in names:
                with open(os.path.join(out, n), "rb") as f:
                    chunks.append(frame(n, f.read()))
            chunks.append(frame("placement.json", json.dumps(placement()).encode()))
            with os.fdopen(real_out, "wb") as f:
                for c in chunks:
                    f.write(c)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return code
