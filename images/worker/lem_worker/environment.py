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


def base_environment() -> dict[str, Any]:
    evidence = container_evidence()
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
    }
