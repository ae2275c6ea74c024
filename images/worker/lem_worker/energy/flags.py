"""A validation flag: a gate that fired (kept and marked, never dropped)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Flag:
    gate: str
    severity: str  # "fail" or "warn"
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"gate": self.gate, "severity": self.severity, "detail": self.detail}
