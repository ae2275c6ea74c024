"""Did another process compute on this run's GPUs during its measured window?

At window start and end the worker lists the compute processes on each GPU it measures (NVML
nvmlDeviceGetComputeRunningProcesses). A process that is not the worker's own (its pid or a
descendant) means the window's energy includes someone else's work: the run gets the validation flag
`shared_gpu` (severity fail), with the processes seen, and the record goes into the result's
environment (`gpu_guard`).

Inside a container NVML may report host pids, which this pid namespace cannot see: such a process
cannot be told apart from the worker's own CUDA context, so up to one unseen pid per GPU is taken as
the worker's own when this process has initialised CUDA (none otherwise); more is flagged.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

from lem_worker.energy.flags import Flag

FLAG = "shared_gpu"


def own_pids() -> set[int]:
    """This process and its descendants (from /proc)."""
    me = os.getpid()
    children: dict[int, list[int]] = {}
    try:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    except OSError:
        return {me}
    out, todo = {me}, [me]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def uses_cuda() -> bool:
    """Has this process a CUDA context (torch initialised CUDA)?"""
    torch = sys.modules.get("torch")
    try:
        return bool(torch is not None and torch.cuda.is_initialized())
    except Exception:  # noqa: BLE001
        return False


class GpuGuard:
    def __init__(self, nv: Any, gpus: list[tuple[str, Any]], own: Callable[[], set[int]] = own_pids,
                 visible: Callable[[int], bool] = lambda pid: os.path.exists(f"/proc/{pid}"),
                 own_unseen: Optional[int] = None) -> None:
        self.nv = nv
        self.gpus = gpus
        self.own = own
        self.visible = visible
        self.own_unseen = own_unseen
        self.checked: list[str] = []
        self.foreign: list[dict[str, Any]] = []
        self.reason: Optional[str] = None

    def check(self, stage: str) -> None:
        """Lists the compute processes on every GPU now; notes those that are not the worker's."""
        fn = getattr(self.nv, "nvmlDeviceGetComputeRunningProcesses", None)
        if fn is None:
            self.reason = "NVML has no nvmlDeviceGetComputeRunningProcesses"
            return
        mine = self.own()
        allowance = self.own_unseen if self.own_unseen is not None else (1 if uses_cuda() else 0)
        for uuid, handle in self.gpus:
            try:
                procs = list(fn(handle))
            except Exception as exc:  # noqa: BLE001
                self.reason = f"cannot list compute processes on {uuid}: {exc}"
                return
            unseen = 0
            for p in procs:
                pid = int(getattr(p, "pid", -1))
                if pid in mine:
                    continue
                if not self.visible(pid):
                    unseen += 1
                    if unseen <= allowance:
                        continue
                mem = getattr(p, "usedGpuMemory", None)
                self.foreign.append({"stage": stage, "gpu": uuid, "pid": pid,
                                     "used_memory_bytes": int(mem) if isinstance(mem, int) else None})
        self.checked.append(stage)

    def flags(self) -> list[Flag]:
        if not self.foreign:
            return []
        who = ", ".join(sorted({f"pid {f['pid']} on {f['gpu']} ({f['stage']})" for f in self.foreign}))
        return [Flag(FLAG, "fail", f"another process computed on this run's GPU during its window: {who}")]

    @property
    def record(self) -> dict[str, Any]:
        return {"checked": list(self.checked), "foreign": list(self.foreign), "reason": self.reason}


def guard_for(meter: Any) -> Optional[GpuGuard]:
    """The guard of a meter's GPUs, or None without NVML GPUs."""
    session = getattr(meter, "session", None)
    if session is None or not getattr(meter, "has_gpu", False):
        return None
    nv = getattr(session, "nv", None) or getattr(session, "nvml", None)
    if nv is None:
        return None
    return GpuGuard(nv, [(g.uuid, g.handle) for g in session.gpus])
