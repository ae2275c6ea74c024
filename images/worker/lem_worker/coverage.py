"""The parameter-coverage audit: introspects the engine's own argument classes inside its image and
classifies every parameter against data/engine_params.yaml (typed / set by lem / left to
extra.engine_args / unclassified), with the coverage of the energy-relevant ones.

`python -m lem_worker coverage BACKEND` prints the report as one JSON document; an unclassified
parameter (a new engine release added it) makes the exit code 1, so a CI step or a test notices.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from typing import Any, Optional

from lem_worker.errors import ConfigError

CATALOGUE_PATH = os.path.join(os.path.dirname(__file__), "data", "engine_params.yaml")
SKIP = {"self", "args", "kwargs", "kw"}


def load_catalogue(path: str = CATALOGUE_PATH) -> dict[str, Any]:
    import yaml
    with open(path, "r", encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of backends")
    return doc


def resolve(spec: str) -> Any:
    """'module:Attr' (alternatives separated by '|'); a module that is not importable falls back to the
    attribute on its top-level package (engines re-export their argument classes there)."""
    errors = []
    for alt in spec.split("|"):
        mod_name, _, attr = alt.partition(":")
        try:
            return getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            errors.append(f"{alt}: {exc}")
            top = mod_name.split(".")[0]
            try:
                return getattr(importlib.import_module(top), attr)
            except (ImportError, AttributeError):
                pass
    raise LookupError("; ".join(errors))


def parameters(cls: Any) -> list[str]:
    """The parameter names of an argument class: dataclass fields, pydantic model_fields, msgspec
    __struct_fields__, else the constructor's named parameters, else a default instance's to_dict() keys."""
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict):
        return list(fields)
    struct = getattr(cls, "__struct_fields__", None)
    if struct:
        return list(struct)
    try:
        sig = inspect.signature(cls)
        names = [n for n, p in sig.parameters.items()
                 if n not in SKIP and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if names:
            return names
    except (TypeError, ValueError):
        pass
    return [k for k in cls().to_dict() if not k.startswith("_")]


def audit(backend: str, catalogue: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    cat = (catalogue or load_catalogue()).get(backend)
    if not isinstance(cat, dict):
        raise ConfigError(f"no parameter catalogue for backend {backend!r}")
    typed: dict[str, str] = cat.get("typed") or {}
    set_by_lem = set(cat.get("set_by_lem") or [])
    left = set(cat.get("left") or [])
    energy = list(cat.get("energy_relevant") or [])
    classes: list[dict[str, Any]] = []
    rows: dict[str, str] = {}
    for i, spec in enumerate(cat.get("classes") or []):
        try:
            cls = resolve(spec)
        except LookupError as exc:
            classes.append({"class": spec, "found": False, "error": str(exc)})
            continue
        names = parameters(cls)
        cname = getattr(cls, "__name__", spec)
        classes.append({"class": spec, "found": True, "parameters": len(names)})
        for n in names:
            key = f"{cname}.{n}" if i > 0 and f"{cname}.{n}" in {*typed, *set_by_lem, *left, *energy} else n
            if key in rows:
                continue
            rows[key] = ("typed" if key in typed else "set_by_lem" if key in set_by_lem
                         else "left_to_extra" if key in left else "unclassified")
    covered = [e for e in energy if e in typed or e in set_by_lem]
    present = [e for e in energy if e in rows]
    engine_version = None
    try:
        engine_version = str(getattr(importlib.import_module(str(cat["classes"][0]).split(".")[0].split(":")[0]),
                                     "__version__", None))
    except ImportError:
        pass
    return {
        "schema": "lem.coverage/1",
        "backend": backend,
        "engine_version": engine_version,
        "classes": classes,
        "parameters": [{"name": k, "status": v, "field": typed.get(k), "energy_relevant": k in energy}
                       for k, v in sorted(rows.items())],
        "counts": {s: sum(1 for v in rows.values() if v == s)
                   for s in ("typed", "set_by_lem", "left_to_extra", "unclassified")},
        "unclassified": sorted(k for k, v in rows.items() if v == "unclassified"),
        "energy_relevant": {"total": len(energy), "covered": len(covered),
                            "coverage": len(covered) / len(energy) if energy else None,
                            "not_covered": [e for e in energy if e not in covered],
                            "missing_from_engine": [e for e in energy if e not in present]},
    }
