"""One measured window per device at a time: exclusive flock()s, one lock file per device.

The worker takes the locks of every device its measurement uses around the idle baseline, the
warm-up and the measured window(s), so two workers (a leftover of a killed orchestrator, a second
campaign, another user's lem) can never measure the same device at once. Keys: the NVML UUID of
each GPU the run measures (taken in sorted order, so two multi-GPU runs cannot deadlock), or `cpu`
for the whole host when there is no GPU.

Lock files live in $LEM_LOCK_DIR (default /tmp/lem-device-locks; the directory is made mode 1777
and the files 0666 so workers of any uid share them; the docker runtime bind-mounts the host's
directory into every service container at the same path). The kernel drops an flock when its
holder dies, even by SIGKILL, so a killed worker never leaves a stale lock. After acquiring, the
holder writes who it is (campaign, run, attempt, pid, host, since) into the file; a waiting
worker logs that and records it in the result (`device_lock.waited_for`).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import threading
import time
from typing import Any, Callable, Optional

from lem_worker.errors import Terminated, WorkerError
from lem_worker.log import log
from lem_worker.timeutil import utc_now_iso

DEFAULT_LOCK_DIR = "/tmp/lem-device-locks"
DEFAULT_TIMEOUT_S = 3600.0
#: Exit code of a worker that gave up waiting for a device (EX_TEMPFAIL).
LOCK_TIMEOUT_EXIT = 75


class DeviceLockTimeout(WorkerError):
    """measurement.device_lock_timeout_s elapsed while another measurement held a device."""

    exit_code = LOCK_TIMEOUT_EXIT


def lock_dir() -> str:
    return os.environ.get("LEM_LOCK_DIR") or DEFAULT_LOCK_DIR


def device_keys(gpu_uuids: list[str]) -> list[str]:
    """The lock keys of a measurement: its GPUs' UUIDs (sorted, unique), or `cpu` without a GPU."""
    return sorted(set(gpu_uuids)) if gpu_uuids else ["cpu"]


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".lock"


def _ensure_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise WorkerError(f"cannot create the device lock directory {path} (LEM_LOCK_DIR): {exc}") from None
    try:
        if os.stat(path).st_uid == os.getuid():
            os.chmod(path, 0o1777)  # workers of any uid (non-root containers, other users) share it
    except OSError:
        pass


def _open_lock_file(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise WorkerError(f"cannot open the device lock file {path}: {exc}") from None
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o666)
    except OSError:
        pass
    return fd


def read_holder(fd: int) -> Optional[dict[str, Any]]:
    """Who holds a lock file, as its holder wrote it (None when unreadable or not yet written)."""
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else None
        return holder if isinstance(holder, dict) else None
    except (OSError, ValueError):
        return None


def describe_holder(holder: Optional[dict[str, Any]]) -> str:
    if not holder:
        return "an unknown process (it has not written its details yet)"
    parts = [f"run {holder.get('run_id')} attempt {holder.get('attempt')}"]
    if holder.get("campaign_id"):
        parts.append(f"of campaign {holder.get('campaign_id')}")
    parts.append(f"(pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')})")
    return " ".join(parts)


class DeviceLock:
    """Exclusive locks on a measurement's devices; `record` goes into the result as `device_lock`."""

    def __init__(self, keys: list[str], timeout_s: float, holder: dict[str, Any], directory: Optional[str] = None,
                 stop: Optional[threading.Event] = None, poll_s: float = 0.1, log_every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = sorted(set(keys))
        self.timeout_s = timeout_s
        self.holder = holder
        self.dir = directory or lock_dir()
        self.stop = stop
        self.poll_s = poll_s
        self.log_every_s = log_every_s
        self.clock = clock
        self.fds: list[int] = []
        self.record: dict[str, Any] = {"devices": list(self.keys), "waited_s": 0.0, "waited_for": None,
                                       "lock_dir": self.dir, "acquired_at": None}

    def acquire(self) -> dict[str, Any]:
        _ensure_dir(self.dir)
        t0 = self.clock()
        deadline = t0 + self.timeout_s
        try:
            for key in self.keys:
                self._acquire_one(key, deadline)
        except BaseException:
            self.release()
            raise
        waited = self.clock() - t0
        self.record["waited_s"] = round(waited, 3) if self.record["waited_for"] is not None else 0.0
        self.record["acquired_at"] = utc_now_iso()
        info = dict(self.holder, since=self.record["acquired_at"], devices=self.keys)
        body = json.dumps(info).encode("utf-8")
        for fd in self.fds:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, body, 0)
            except OSError:
                pass
        if self.record["waited_for"] is not None:
            log(f"device lock: acquired {', '.join(self.keys)} after waiting {waited:.1f}s")
        return self.record

    def _acquire_one(self, key: str, deadline: float) -> None:
        path = os.path.join(self.dir, _file_name(key))
        fd = _open_lock_file(path)
        next_log = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fds.append(fd)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise WorkerError(f"cannot lock {path}: {exc}") from None
            holder = read_holder(fd)
            if self.record["waited_for"] is None:
                self.record["waited_for"] = holder or {"unknown": True}
            now = self.clock()
            if now >= next_log:
                log(f"device lock: {key} is being measured by {describe_holder(holder)}; waiting "
                    f"(up to measurement.device_lock_timeout_s = {self.timeout_s:g}s; lock file {path})")
                next_log = now + self.log_every_s
            if now >= deadline:
                os.close(fd)
                raise DeviceLockTimeout(
                    f"device {key} stayed locked by another measurement ({describe_holder(holder)}) for "
                    f"measurement.device_lock_timeout_s = {self.timeout_s:g}s; gave up without measuring "
                    f"(lock file {path}). Two measurements never share a device; wait for the other one or raise the timeout.")
            if self.stop is not None and self.stop.is_set():
                os.close(fd)
                raise Terminated("stopped while waiting for the device lock")
            time.sleep(min(self.poll_s, max(0.0, deadline - now)))

    def release(self) -> None:
        for fd in self.fds:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self.fds = []

    def __enter__(self) -> "DeviceLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_info(run_id: str, attempt: int) -> dict[str, Any]:
    token = os.environ.get("LEM_ATTEMPT_TOKEN") or None
    campaign = run_id.rsplit(":", 1)[0] if ":" in run_id else None
    return {"campaign_id": campaign, "run_id": run_id, "attempt": attempt, "pid": os.getpid(),
            "host": socket.gethostname(), "attempt_token": token}
