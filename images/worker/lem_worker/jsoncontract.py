"""The orchestrator's contract, checked on the worker's side.

lem_worker/schemas/ holds JSON Schemas generated from the zod schemas (src/config/json-schemas.ts,
`npm run build`; a test fails when they are stale): experiment.schema.json (what a CONFIG.json's
`experiment` may hold), result.schema.json (what result.json must be) and backends.json (the
backend registry of src/contract/backends.ts). The worker validates the config it receives and the
result it writes against them with `jsonschema` (Debian: python3-jsonschema). A missing jsonschema
is a missing dependency (exit 3); an unknown or malformed field is a config error (exit 2) naming
the field's path.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from lem_worker import errors as _errors
from lem_worker.errors import ConfigError, WorkerError

class _MissingDependency(WorkerError):
    """A Python package the run needs is not installed (exit 3, never retried)."""

    exit_code = 3


# errors.py's MissingDependency (exit 3) when this worker has it; the same shape otherwise.
MissingDependency: type[WorkerError] = getattr(_errors, "MissingDependency", _MissingDependency)

SCHEMA_DIR = Path(os.environ.get("LEM_SCHEMAS_DIR") or Path(__file__).resolve().parent / "schemas")


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / name
    try:
        with open(path, "r", encoding="utf-8") as fh:
            doc: dict[str, Any] = json.load(fh)
            return doc
    except OSError as exc:
        raise WorkerError(f"the worker's contract file {path} is missing or unreadable ({exc}); "
                          "rebuild the image or run `npm run build`") from None


def backends() -> dict[str, dict[str, Any]]:
    """The backend registry (src/contract/backends.ts) by name."""
    reg: dict[str, dict[str, Any]] = load_schema("backends.json")["backends"]
    return reg


def _jsonschema() -> Any:
    try:
        import jsonschema
    except ImportError:
        raise MissingDependency("the Python package jsonschema is not installed; the worker validates its config and "
                                "result with it (Debian/Ubuntu: apt-get install python3-jsonschema; "
                                "elsewhere: pip install jsonschema)") from None
    return jsonschema


@lru_cache(maxsize=None)
def _validator(name: str) -> Any:
    js = _jsonschema()
    schema = load_schema(name)
    cls = js.validators.validator_for(schema)
    return cls(schema)


def _branch(err: Any) -> Optional[int]:
    """The alternative of a tagged union (oneOf/anyOf) that the instance's tag selects, if any."""
    inst = err.instance
    if not isinstance(inst, dict):
        return None
    for i, alt in enumerate(err.validator_value):
        props = alt.get("properties", {}) if isinstance(alt, dict) else {}
        tags = [(k, p["const"]) for k, p in props.items() if isinstance(p, dict) and "const" in p]
        if tags and all(inst.get(k) == v for k, v in tags):
            return i
    return None


def _tags(err: Any) -> Optional[tuple[str, list[Any]]]:
    names: Optional[str] = None
    values: list[Any] = []
    for alt in err.validator_value:
        for k, p in (alt.get("properties", {}) if isinstance(alt, dict) else {}).items():
            if isinstance(p, dict) and "const" in p:
                names = k
                values.append(p["const"])
    return (names, values) if names is not None else None


def _describe(err: Any, root: str) -> list[str]:
    """The field path and what is wrong, one line per problem, following tagged unions into the branch
    the instance's tag selects (a plain jsonschema message would only say "not valid under any")."""
    if err.validator in ("oneOf", "anyOf") and err.context:
        i = _branch(err)
        if i is None:
            tags = _tags(err)
            if tags is not None:
                key, values = tags
                path = ".".join([root, *map(str, err.absolute_path), key])
                got = err.instance.get(key) if isinstance(err.instance, dict) else None
                return [f"{path}: {got!r} is not one of {', '.join(map(str, values))}"]
        else:
            sub = [c for c in err.context if c.relative_schema_path and c.relative_schema_path[0] == i]
            if sub:
                return [line for c in sub for line in _describe(c, root)]
    base = ".".join([root, *map(str, err.absolute_path)])
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties", {}))
        return [f"{base}.{k}: unknown field (not in the experiment contract)" for k in sorted(err.instance) if k not in known]
    return [f"{base}: {err.message}"]


def check(instance: Any, schema: str, root: str) -> None:
    """Raises ConfigError naming the field(s) when `instance` breaks `schema` (every problem, '; '-joined)."""
    errors = sorted(_validator(schema).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [line for e in errors for line in _describe(e, root)]
        raise ConfigError("; ".join(dict.fromkeys(lines)))


def check_result(doc: dict[str, Any]) -> None:
    """The result the worker is about to write must match result.schema.json; a mismatch is a worker bug (exit 1)."""
    try:
        check(doc, "result.schema.json", "result")
    except ConfigError as exc:
        raise WorkerError(f"the worker built a result that breaks the result contract: {exc}") from None
