"""`python3 -m lem_worker probe --json [--configs FILE|-]`: what this interpreter/image can run.

Prints one JSON document (schema lem.probe/1): the worker's version, the Python packages the given
experiment configs need (each installed or not, with its version, read from package metadata
without importing the engine) and the GPUs this interpreter sees (NVML, else `nvidia-smi -L`). The
orchestrator's preflight runs it in each image a campaign needs (a throwaway `docker run --rm`, or
the local interpreter) before anything is recorded or started. `--configs` takes a JSON array of
resolved experiment configs (or `{"experiment": …}` documents); `-` reads it from stdin.
"""
from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
from typing import Any, Mapping

from lem_worker import __version__
from lem_worker.deps import BACKEND_PACKAGES, installed, missing, needs
from lem_worker.errors import ConfigError

SCHEMA = "lem.probe/1"
#: Distribution names to try for a package's version (module name first).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "tensorrt_llm": ("tensorrt_llm", "tensorrt-llm"),
    "pynvml": ("nvidia-ml-py", "pynvml"),
}
ALWAYS = ("numpy", "jsonschema")


def package_version(package: str) -> str | None:
    """The installed version (package metadata), 'unknown' when importable without metadata, None when absent."""
    if not installed(package):
        return None
    for dist in DISTRIBUTIONS.get(package, (package,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def gpus() -> dict[str, Any]:
    """The GPUs this interpreter sees: NVML first, else `nvidia-smi -L`; none with the reason."""
    reasons: list[str] = []
    if installed("pynvml"):
        try:
            import pynvml

            pynvml.nvmlInit()
            try:
                devices = []
                for i in range(int(pynvml.nvmlDeviceGetCount())):
                    h = pynvml.nvmlDeviceGetHandleByIndex(i)
                    name = pynvml.nvmlDeviceGetName(h)
                    uuid = pynvml.nvmlDeviceGetUUID(h)
                    devices.append({"index": i, "name": name.decode() if isinstance(name, bytes) else str(name),
                                    "uuid": uuid.decode() if isinstance(uuid, bytes) else str(uuid)})
                return {"count": len(devices), "devices": devices, "source": "nvml", "reason": None}
            finally:
                pynvml.nvmlShutdown()
        except Exception as exc:  # noqa: BLE001 - no driver, no device: say why
            reasons.append(f"NVML: {type(exc).__name__}: {exc}")
    else:
        reasons.append("NVML: pynvml not installed")
    try:
        r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=15)
        if r.returncode == 0:
            lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip().startswith("GPU ")]
            devices = [{"index": i, "name": ln, "uuid": None} for i, ln in enumerate(lines)]
            return {"count": len(devices), "devices": devices, "source": "nvidia-smi",
                    "reason": None if devices else "nvidia-smi lists no GPU"}
        reasons.append(f"nvidia-smi exited {r.returncode}")
    except (OSError, subprocess.SubprocessError) as exc:
        reasons.append(f"nvidia-smi: {type(exc).__name__}")
    return {"count": 0, "devices": [], "source": None, "reason": "; ".join(reasons)}


def _experiments(doc: Any) -> list[Mapping[str, Any]]:
    items = doc if isinstance(doc, list) else [doc]
    out: list[Mapping[str, Any]] = []
    for i, item in enumerate(items):
        exp = item.get("experiment", item) if isinstance(item, Mapping) else None
        if not isinstance(exp, Mapping) or not isinstance(exp.get("backend"), str):
            raise ConfigError(f"--configs[{i}]: expected an experiment config with a backend")
        out.append(exp)
    return out


def read_configs(source: str | None) -> list[Mapping[str, Any]]:
    if source is None:
        return []
    try:
        if source == "-":
            doc = json.load(sys.stdin)
        else:
            with open(source, encoding="utf-8") as fh:
                doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--configs {source}: {exc}") from None
    return _experiments(doc)


def probe(configs: list[Mapping[str, Any]], with_gpus: bool = True) -> dict[str, Any]:
    needed: list[str] = list(ALWAYS)
    for exp in configs:
        for n in needs(exp):
            if n.package not in needed:
                needed.append(n.package)
    if not configs:
        for pkgs in BACKEND_PACKAGES.values():
            needed.extend(p for p in pkgs if p not in needed)
    gone = missing(list(configs))
    return {
        "schema": SCHEMA,
        "worker_version": __version__,
        "python_version": platform.python_version(),
        "executable": sys.executable,
        "packages": {p: package_version(p) for p in needed},
        "missing": [{"package": p, "needed_by": whys} for p, whys in gone.items()],
        "gpus": gpus() if with_gpus else {"count": 0, "devices": [], "source": None, "reason": "not asked (--no-gpus)"},
    }


def print_probe(source: str | None, with_gpus: bool) -> int:
    print(json.dumps(probe(read_configs(source), with_gpus), sort_keys=True), flush=True)
    return 0
