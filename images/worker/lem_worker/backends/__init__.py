"""The worker's backend registry: each backend module in this package registers its run function
with `@register("name")`; `runner_for(name)` finds it. The runner names no backend. The names match
the orchestrator's registry (src/contract/backends.ts, exported as schemas/backends.json; a test
checks both list the same backends). A new backend: one module here with a registered
`run_<name>(cfg, stop, **meter_kwargs) -> result dict`, plus its entry in src/contract/backends.ts.

Modules are found by scanning this package (pkgutil) the first time a backend is asked for; each
imports its engine (torch, vllm, tensorrt_llm) only when it runs, so the scan is cheap.
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
from typing import Any, Callable, Protocol

from lem_worker.errors import ConfigError


class BackendRun(Protocol):
    def __call__(self, cfg: Any, stop: threading.Event, **meter_kwargs: Any) -> dict[str, Any]: ...


_REGISTRY: dict[str, BackendRun] = {}
_scanned = False


def register(name: str) -> Callable[[Any], Any]:
    """Class/function decorator: `@register("vllm")` above `def run_vllm(cfg, stop, **meter_kwargs)`."""

    def deco(fn: Any) -> Any:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise RuntimeError(f"backend {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def _scan() -> None:
    global _scanned
    if _scanned:
        return
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    _scanned = True


def registered() -> list[str]:
    _scan()
    return sorted(_REGISTRY)


def runner_for(name: str) -> BackendRun:
    _scan()
    fn = _REGISTRY.get(name)
    if fn is None:
        raise ConfigError(f"experiment.backend: {name} is not implemented by this worker "
                          f"(it has: {', '.join(sorted(_REGISTRY))})")
    return fn
