"""Which Python packages an experiment needs, checked before anything heavy is loaded.

A run whose config needs a package this interpreter lacks (the engine, `transformers`, `datasets`
for hub prompts, torch for a CUDA calibration) fails at once with missing_dependency (exit 3),
not after the model has loaded. The orchestrator's preflight asks the same question of each image
through `python3 -m lem_worker probe --json` (probe.py), so it is asked before a campaign starts.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from lem_worker.errors import MissingDependency

#: The packages each backend's worker module imports to run at all.
BACKEND_PACKAGES: dict[str, tuple[str, ...]] = {
    "pytorch": ("torch", "transformers"),
    "vllm": ("vllm",),
    "tensorrt": ("tensorrt_llm",),
    "calibration": ("numpy",),
}
#: Where each package comes from, for the message.
INSTALL_HINTS: dict[str, str] = {
    "vllm": "use the lem-vllm image (`lem images build vllm`)",
    "tensorrt_llm": "use the lem-tensorrt image (`lem images build tensorrt`)",
    "datasets": "pip install datasets (or use prompts.source builtin/file/synthetic)",
}


@dataclass(frozen=True)
class Need:
    package: str
    why: str


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = raw.get(key)
    return v if isinstance(v, Mapping) else {}


def _custom_loader(raw: Mapping[str, Any]) -> bool:
    """A model loader hook (`module:function`) given in the config, wherever this version keeps it."""
    return any(isinstance(sec.get("loader"), str) and sec.get("loader")
               for sec in (raw, _section(raw, "pytorch"), _section(raw, "extra")))


def needs(raw: Mapping[str, Any]) -> list[Need]:
    """The packages an experiment (its resolved config, as the orchestrator sends it) needs."""
    backend = str(raw.get("backend", ""))
    out = [Need(p, f"backend {backend}") for p in BACKEND_PACKAGES.get(backend, ())]
    vllm = _section(raw, "vllm")
    if backend == "vllm" and (vllm.get("endpoint") is not None or vllm.get("mode") == "server"):
        out = []  # measured over HTTP: the served engine is a server's (serving/), not imported here
    if backend == "pytorch" and _custom_loader(raw):
        out = [n for n in out if n.package != "transformers"]  # a loader hook (tests, custom models) loads the model
    if _section(raw, "prompts").get("source") == "huggingface":
        out.append(Need("datasets", "prompts.source huggingface"))
    if backend == "calibration" and _section(raw, "calibration").get("device") == "cuda":
        out.append(Need("torch", "calibration.device cuda"))
    return out


def installed(package: str) -> bool:
    if package in sys.modules:
        return True
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def missing(raws: list[Mapping[str, Any]]) -> dict[str, list[str]]:
    """package → why it is needed (distinct reasons), for each needed package that is not installed."""
    out: dict[str, list[str]] = {}
    for raw in raws:
        for n in needs(raw):
            if not installed(n.package):
                whys = out.setdefault(n.package, [])
                if n.why not in whys:
                    whys.append(n.why)
    return out


def missing_message(gone: dict[str, list[str]]) -> str:
    parts = []
    for pkg, whys in gone.items():
        hint = INSTALL_HINTS.get(pkg)
        parts.append(f"{pkg} (needed by {', '.join(whys)}{'; ' + hint if hint else ''})")
    return f"not installed in this interpreter ({sys.executable}): {'; '.join(parts)}"


def check(raw: Mapping[str, Any]) -> None:
    """Raises MissingDependency naming every needed package that is not installed."""
    gone = missing([raw])
    if gone:
        raise MissingDependency(missing_message(gone), sorted(gone))
