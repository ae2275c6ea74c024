"""The GPU acceptance report: figures (a measured number, or null with its reason), sections, the
deadline they share, and the table printed at the end."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

TARGETS = {
    "harness_vs_bare": ">= 99 %",
    "sampler_cpu_share": "<= 0.5 %",
    "energy_counter_vs_integrated_power": "within 2 %",
    "idle_baseline_cv": "<= 5 % (lem baseline_max_cv)",
    "idle_baseline_drift": "<= 5 % (lem baseline_max_drift)",
}


class Report:
    def __init__(self, dry: bool, deadline: float) -> None:
        self.dry = dry
        self.deadline = deadline
        self.figures: dict[str, dict[str, Any]] = {}
        self.sections: dict[str, Any] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def figure(self, name: str, value: Optional[float], unit: str, reason: Optional[str] = None,
               ok: Optional[bool] = None, note: Optional[str] = None) -> None:
        self.figures[name] = {"value": value, "unit": unit, "target": TARGETS.get(name), "ok": ok if value is not None else None,
                              "reason": None if value is not None else (reason or "not measured"), "note": note}

    def null(self, names: list[tuple[str, str]], reason: str) -> None:
        for name, unit in names:
            if name not in self.figures:
                self.figure(name, None, unit, reason)


def section(rep: Report, name: str, need_s: float, figures: list[tuple[str, str]], fn: Callable[[], Optional[str]]) -> None:
    """Runs fn unless it would not fit the deadline; a returned string or an exception is the reason
    the figures it did not set are null."""
    t0 = time.monotonic()
    if rep.left() < need_s:
        rep.null(figures, f"skipped: {rep.left():.0f} s of the time budget left, the section needs about {need_s:.0f} s")
        rep.sections[name] = {"skipped": True}
        return
    try:
        why = fn()
    except Exception as exc:  # noqa: BLE001 - one failed section must not hide the others
        why = f"{type(exc).__name__}: {exc}"
    rep.null(figures, why or "not measured")
    rep.sections.setdefault(name, {})["elapsed_s"] = round(time.monotonic() - t0, 1)


def fmt(v: Optional[float]) -> str:
    if v is None:
        return "null"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"


def table(rep: Report) -> str:
    rows = [("figure", "value", "unit", "target", "ok", "reason / note")]
    for name, f in rep.figures.items():
        ok = "" if f["ok"] is None else ("yes" if f["ok"] else "NO")
        rows.append((name, fmt(f["value"]), f["unit"], f["target"] or "", ok, f["reason"] or f["note"] or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(widths[i]) if i < 5 else c for i, c in enumerate(r)) for r in rows)
