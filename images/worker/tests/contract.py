"""A Python mirror of src/contract/result.ts, used by tests to check worker output against the contract."""
from __future__ import annotations

import math
import re
from typing import Any

BACKENDS = ("pytorch", "vllm", "tensorrt", "calibration")
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def _check_reading(errors: list[str], where: str, r: Any) -> None:
    if not isinstance(r, dict) or set(r) != {"joules", "source", "reason"}:
        errors.append(f"{where}: must be {{joules, source, reason}}")
        return
    j = r["joules"]
    if j is not None and (not isinstance(j, (int, float)) or j < 0 or not math.isfinite(j)):
        errors.append(f"{where}.joules: must be a non-negative number or null")
    if (j is None) != (r["reason"] is not None):
        errors.append(f"{where}: exactly one of joules/reason must be non-null")
    for k in ("source", "reason"):
        if r[k] is not None and not isinstance(r[k], str):
            errors.append(f"{where}.{k}: must be a string or null")


def common_errors(doc: Any, version: int) -> list[str]:
    errors: list[str] = []
    if not isinstance(doc, dict):
        return ["root must be an object"]
    if doc.get("schema_version") != version:
        errors.append(f"schema_version must be {version}")
    for k in ("run_id", "experiment_id"):
        if not isinstance(doc.get(k), str) or not doc[k]:
            errors.append(f"{k}: non-empty string required")
    for k in ("cycle", "attempt"):
        if not isinstance(doc.get(k), int) or isinstance(doc.get(k), bool) or doc[k] <= 0:
            errors.append(f"{k}: positive integer required")
    if doc.get("backend") not in BACKENDS:
        errors.append("backend: not a known backend")
    for k in ("started_at", "ended_at"):
        if not isinstance(doc.get(k), str) or not ISO_UTC.match(doc[k]):
            errors.append(f"{k}: ISO-8601 UTC required")
    metrics = doc.get("metrics")
    unmeasured = doc.get("unmeasured")
    if not isinstance(metrics, dict) or not isinstance(unmeasured, dict):
        errors.append("metrics/unmeasured must be objects")
    else:
        for name, v in metrics.items():
            if v is None:
                if not isinstance(unmeasured.get(name), str):
                    errors.append(f"metric {name} is null without an unmeasured reason")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                errors.append(f"metric {name}: finite number or null required")
        for name, v in unmeasured.items():
            if not isinstance(v, str):
                errors.append(f"unmeasured.{name}: string required")
    energy = doc.get("energy")
    if not isinstance(energy, dict):
        errors.append("energy: object required")
    else:
        for dom in ("gpu", "cpu", "dram"):
            _check_reading(errors, f"energy.{dom}", energy.get(dom))
    if not isinstance(doc.get("environment"), dict):
        errors.append("environment: object required")
    notes = doc.get("notes")
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        errors.append("notes: list of strings required")
    return errors
