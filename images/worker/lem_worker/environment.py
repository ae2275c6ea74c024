"""Host/runtime metadata recorded with every result."""
from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any, Optional


def cpu_model() -> Optional[str]:
    try:
        with open("/proc/cpuinfo", "r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def container_evidence() -> list[str]:
    """Signs that we run inside a container (empty list: none found)."""
    found: list[str] = []
    if os.path.exists("/.dockerenv"):
        found.append("/.dockerenv")
    if os.path.exists("/run/.containerenv"):
        found.append("/run/.containerenv")
    if os.environ.get("container"):
        found.append(f"container={os.environ['container']}")
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        found.append("KUBERNETES_SERVICE_HOST")
    try:
        with open("/proc/1/cgroup", "r", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for marker in ("docker", "kubepods", "containerd", "libpod", "lxc"):
            if marker in text:
                found.append(f"/proc/1/cgroup:{marker}")
                break
    except OSError:
        pass
    return found


def module_version(name: str) -> Optional[str]:
    mod = sys.modules.get(name)
    if mod is None:
        try:
            mod = __import__(name)
        except Exception:  # noqa: BLE001 - any import failure means "not available"
            return None
    return str(getattr(mod, "__version__", "unknown"))


CPU_SYSFS_ROOT = "/sys/devices/system/cpu"


def _cpu_ranges(cpus: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    out: list[str] = []
    cpus = sorted(cpus)
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(out)


def cpu_frequency_state(root: str = CPU_SYSFS_ROOT) -> tuple[dict[str, Any], dict[str, str]]:
    """CPU frequency governor and scaling driver from ROOT/cpu<N>/cpufreq/ (the Linux cpufreq sysfs).

    Returns (fields, unavailable). `cpu_governor` / `cpu_scaling_driver` hold the value when every
    CPU with cpufreq has the same one; `cpu_governor_by_cpu` / `cpu_scaling_driver_by_cpu` map each
    value to its CPU list ("0-3,6"), so differing CPUs are never collapsed into one guess. Every
    null field has its reason in `unavailable`."""
    fields: dict[str, Any] = {"cpu_governor": None, "cpu_scaling_driver": None,
                              "cpu_governor_by_cpu": None, "cpu_scaling_driver_by_cpu": None}
    unavailable: dict[str, str] = {}
    try:
        entries = os.listdir(root)
    except OSError as exc:
        reason = f"{root} not readable ({exc.strerror})"
        for k in fields:
            unavailable[k] = reason
        return fields, unavailable
    cpus = sorted(int(e[3:]) for e in entries if e.startswith("cpu") and e[3:].isdigit())
    for fname, key in (("scaling_governor", "cpu_governor"), ("scaling_driver", "cpu_scaling_driver")):
        by_value: dict[str, list[int]] = {}
        errors: list[str] = []
        for n in cpus:
            path = os.path.join(root, f"cpu{n}", "cpufreq", fname)
            try:
                with open(path, "r", encoding="utf-8", errors="replace") as fh:
                    value = fh.read().strip()
            except FileNotFoundError:
                continue
            except OSError as exc:
                errors.append(f"{path}: {exc.strerror}")
                continue
            if value:
                by_value.setdefault(value, []).append(n)
        if not by_value:
            reason = ("; ".join(errors[:3]) if errors else
                      f"no {root}/cpu*/cpufreq/{fname} (cpufreq not exposed: common in VMs and some containers)")
            unavailable[key] = reason
            unavailable[f"{key}_by_cpu"] = reason
            continue
        fields[f"{key}_by_cpu"] = {v: _cpu_ranges(c) for v, c in sorted(by_value.items())}
        if len(by_value) == 1:
            fields[key] = next(iter(by_value))
        else:
            unavailable[key] = f"CPUs differ: see {key}_by_cpu"
    return fields, unavailable


def base_environment(cpu_root: str = CPU_SYSFS_ROOT) -> dict[str, Any]:
    """Host facts; every null machine-state field has its reason in `unavailable`."""
    evidence = container_evidence()
    cpufreq, unavailable = cpu_frequency_state(cpu_root)
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy_version": module_version("numpy"),
        "in_container": bool(evidence),
        "container_evidence": evidence,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        **cpufreq,
        "unavailable": unavailable,
    }
