"""What one measured window yields: per-domain energy with its source or the reason it is missing,
the handle of an open window, and the closed window with its per-GPU detail, cross-check and flags."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from lem_worker.energy.flags import Flag
from lem_worker.energy.sampler import SampleSummary


@dataclass
class DomainEnergy:
    joules: Optional[float]
    source: Optional[str]
    reason: Optional[str]

    def as_reading(self) -> dict[str, Any]:
        if self.joules is None:
            return {"joules": None, "source": None, "reason": self.reason or "not measured"}
        return {"joules": max(0.0, self.joules), "source": self.source, "reason": None}


@dataclass
class WindowHandle:
    name: str
    t0: float
    gpu_mj: dict[str, Optional[int]]
    rapl: dict[str, Optional[int]]


@dataclass
class WindowEnergy:
    name: str
    t0: float
    t1: float
    gpu: DomainEnergy
    cpu: DomainEnergy
    dram: DomainEnergy
    per_gpu: list[dict[str, Any]]
    cross_check: Optional[dict[str, Any]]
    summary: Optional[SampleSummary]
    flags: list[Flag] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.t1 - self.t0

    def total_j(self) -> Optional[float]:
        vals = [d.joules for d in (self.gpu, self.cpu, self.dram) if d.joules is not None]
        return sum(vals) if vals else None
