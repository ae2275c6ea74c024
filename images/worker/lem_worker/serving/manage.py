"""vllm.mode: server — lem starts `vllm serve` itself with the experiment's engine arguments, waits until it
is ready (GET /health = 200) and measures it over HTTP.

The server outlives the worker run (its own session), so the next run with the same engine arguments
reuses it; a state file per port (`$LEM_SERVE_STATE_DIR`, default the temp directory:
lem-vllm-serve-<port>.json) records its pid and arguments. When the arguments change, the old server
is stopped (SIGTERM to its process group, SIGKILL after 30 s) and a new one started. The executable
is `$LEM_VLLM_EXECUTABLE` or `vllm` on PATH (the lem-vllm image has it).

Engine arguments are `backends.vllm_args.engine_kwargs` (the same Engine Arguments the offline `vllm.LLM`
gets), written as `vllm serve` flags: `key_name=value` -> `--key-name value`, true -> `--key-name`,
false -> nothing (the default), except `--no-enable-prefix-caching` (on by default in vLLM's V1 engine) and the model id as
`--served-model-name` so /v1/models lists it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any, Optional
from urllib.parse import urlsplit

from lem_worker.backends.vllm_args import engine_kwargs
from lem_worker.config import Experiment
from lem_worker.errors import Terminated, WorkerError
from lem_worker.log import log
from lem_worker.serving.client import Endpoint, get_json
from lem_worker.serving.settings import ServingCfg

NOT_FLAGS = {"model", "disable_log_stats"}  # positional / offline-only
DEFAULT_ON = {"enable_prefix_caching"}  # boolean engine arguments whose default is on in current vLLM
_SERVERS: list[subprocess.Popen[bytes]] = []  # started servers outlive the run; kept referenced, never waited on


def serve_args(exp: Experiment, sc: ServingCfg) -> list[str]:
    assert exp.model is not None
    kw = engine_kwargs(exp, exp.model.id, own_tokenizer=False, skip_tokenizer=False)
    parts = urlsplit(sc.base_url)
    args = ["serve", exp.model.id, "--host", parts.hostname or "127.0.0.1", "--port", str(parts.port or 8000),
            "--served-model-name", exp.model.id]
    for k, v in kw.items():
        if k in NOT_FLAGS or v is None:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        elif v is False:
            if k in DEFAULT_ON:  # false is the default of the others: nothing to say
                args.append("--no-" + k.replace("_", "-"))
        else:
            args += [flag, str(v)]
    return args


def state_path(port: int) -> str:
    root = os.environ.get("LEM_SERVE_STATE_DIR") or tempfile.gettempdir()
    return os.path.join(root, f"lem-vllm-serve-{port}.json")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def is_ours(pid: int, recorded: Any) -> bool:
    """The pid still runs the recorded `vllm serve` command (a stale state file's pid may have been reused)."""
    if not alive(pid) or not isinstance(recorded, list) or len(recorded) < 3:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = f.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return False
    return "serve" in parts and str(recorded[2]) in parts


def stop_server(pid: int, grace_s: float = 30.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except OSError:
            try:
                os.kill(pid, sig)
            except OSError:
                return
        deadline = time.monotonic() + grace_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not alive(pid):
            return


def ready(origin: str) -> bool:
    try:
        status, _ = get_json(Endpoint.parse(origin), "/health", timeout=2.0)
    except OSError:
        return False
    return status == 200


def _tail(path: str, n: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def ensure_server(exp: Experiment, sc: ServingCfg, stop: threading.Event, notes: list[str]) -> dict[str, Any]:
    exe = os.environ.get("LEM_VLLM_EXECUTABLE") or shutil.which("vllm")
    if not exe:
        raise WorkerError("vllm.mode server: the `vllm` executable is not on PATH; run in the lem-vllm image "
                          "(`lem images build vllm`) or set LEM_VLLM_EXECUTABLE")
    args = serve_args(exp, sc)
    digest = hashlib.sha256(json.dumps([exe] + args).encode()).hexdigest()[:16]
    port = int(urlsplit(sc.base_url).port or 8000)
    path = state_path(port)
    prev: Optional[dict[str, Any]] = None
    try:
        with open(path) as f:
            prev = json.load(f)
    except (OSError, ValueError):
        prev = None
    info: dict[str, Any] = {"command": [os.path.basename(exe)] + args, "args_hash": digest, "state_file": path}
    if prev and isinstance(prev.get("pid"), int) and is_ours(prev["pid"], prev.get("args")):
        if prev.get("args_hash") == digest and ready(sc.origin):
            notes.append(f"vllm serve reused (pid {prev['pid']}, same engine arguments)")
            info.update({"pid": prev["pid"], "reused": True, "log": prev.get("log"), "ready_s": 0.0})
            return info
        log(f"vllm serve: engine arguments changed (or not ready); stopping pid {prev['pid']}")
        stop_server(prev["pid"])
        info["restarted"] = True
    log_path = os.path.join(os.path.dirname(path), f"lem-vllm-serve-{port}.log")
    log(f"vllm serve: starting {exe} {' '.join(args)} (log {log_path})")
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen([exe] + args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # outlives this run: reused by the next one
    _SERVERS.append(proc)
    with open(path, "w") as f:
        json.dump({"pid": proc.pid, "args_hash": digest, "args": [exe] + args, "log": log_path}, f)
    t0 = time.monotonic()
    while not ready(sc.origin):
        if proc.poll() is not None:
            raise WorkerError(f"vllm serve exited with {proc.returncode} before it was ready; log tail:\n{_tail(log_path)}")
        if stop.is_set():
            stop_server(proc.pid, 5.0)
            raise Terminated("stopped while vllm serve was starting")
        if time.monotonic() - t0 > sc.server_start_timeout_s:
            stop_server(proc.pid, 5.0)
            raise WorkerError(f"vllm serve was not ready after {sc.server_start_timeout_s:g}s "
                              f"(vllm.server_start_timeout_s); log tail:\n{_tail(log_path)}")
        stop.wait(0.25)
    ready_s = time.monotonic() - t0
    notes.append(f"vllm serve started by lem (pid {proc.pid}), ready after {ready_s:.1f}s; it stays up for the next run "
                 "with the same engine arguments")
    info.update({"pid": proc.pid, "reused": False, "log": log_path, "ready_s": ready_s})
    return info


def stop_managed_servers(notes: list[str], why: str = "before the offline engine loads") -> list[int]:
    """Stops every `vllm serve` lem started (state files in $LEM_SERVE_STATE_DIR) and returns their pids: an
    offline engine on the same GPUs needs the memory a lingering server holds, and a campaign's end (or
    interrupt) stops what it started (`python3 -m lem_worker serving-stop`, called by the runtime's shutdown)."""
    root = os.environ.get("LEM_SERVE_STATE_DIR") or tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(root) if n.startswith("lem-vllm-serve-") and n.endswith(".json")]
    except OSError:
        return []
    stopped: list[int] = []
    for name in names:
        path = os.path.join(root, name)
        try:
            with open(path) as f:
                state = json.load(f)
            pid = state.get("pid")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(pid, int) and is_ours(pid, state.get("args")):
            log(f"vllm serve (pid {pid}) started by an earlier serving run: stopping it {why}")
            stop_server(pid)
            stopped.append(pid)
            notes.append(f"stopped the vllm serve lem had started earlier (pid {pid}) to free its GPU memory")
        try:
            os.unlink(path)
        except OSError:
            pass
    return stopped


def serving_stop_main() -> int:
    """`python3 -m lem_worker serving-stop`: one JSON line, the pids of the `vllm serve` processes stopped."""
    stopped = stop_managed_servers([], "at the end of the campaign")
    print(json.dumps({"stopped": stopped}))
    return 0
