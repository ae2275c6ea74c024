"""Linux RAPL via the powercap sysfs interface.

Zones: /sys/class/powercap/intel-rapl:N (a CPU package, name "package-N") with sub-zones
intel-rapl:N:M (name "core", "uncore" or "dram"). `energy_uj` is a wrapping counter in
microjoules; it wraps at `max_energy_range_uj`. A meter accumulates deltas on every `poll()`,
so polling at least once per wrap period (minutes at package power) catches every wrap.
AMD CPUs expose the same interface on recent kernels. Absent in most VMs: then CPU energy is
unknown (null with a reason), never zero.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Optional

DEFAULT_ROOT = "/sys/class/powercap"


@dataclass
class RaplZone:
    path: str
    name: str
    domain: str  # "cpu" (package) or "dram"
    max_range_uj: int
    last_uj: int
    accumulated_uj: int = 0
    wraps: int = 0


def wrap_delta(start_uj: int, end_uj: int, max_range_uj: int) -> int:
    """Counter delta with one wrap-around at max_range_uj (the counter runs 0..max_range_uj)."""
    if end_uj >= start_uj:
        return end_uj - start_uj
    return (max_range_uj - start_uj) + end_uj + 1 if max_range_uj > 0 else end_uj


def _read_int(path: str) -> int:
    with open(path, "r", encoding="ascii") as fh:
        return int(fh.read().strip())


class RaplMeter:
    """Reads the package and DRAM zones; `available` is False with a `reason` when not readable."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = root
        self.zones: list[RaplZone] = []
        self.reason_cpu: Optional[str] = None
        self.reason_dram: Optional[str] = None
        self._lock = threading.Lock()
        self._discover()

    def _discover(self) -> None:
        if not os.path.isdir(self.root):
            self.reason_cpu = self.reason_dram = f"RAPL not readable: {self.root} absent"
            return
        try:
            entries = sorted(os.listdir(self.root))
        except OSError as exc:
            self.reason_cpu = self.reason_dram = f"RAPL not readable: cannot list {self.root}: {exc.strerror}"
            return
        candidates = [e for e in entries if e.startswith("intel-rapl:")]
        if not candidates:
            self.reason_cpu = self.reason_dram = f"RAPL not readable: no intel-rapl zones under {self.root}"
            return
        errors: list[str] = []
        for entry in candidates:
            zone_dir = os.path.join(self.root, entry)
            try:
                with open(os.path.join(zone_dir, "name"), "r", encoding="ascii") as fh:
                    name = fh.read().strip()
            except OSError:
                continue
            depth = entry.count(":")
            if depth == 1 and name.startswith("package"):
                domain = "cpu"
            elif name == "dram":
                domain = "dram"
            else:
                continue  # core/uncore/psys are inside or overlap the package
            try:
                last = _read_int(os.path.join(zone_dir, "energy_uj"))
                max_range = _read_int(os.path.join(zone_dir, "max_energy_range_uj"))
            except PermissionError:
                errors.append(f"{zone_dir}/energy_uj permission denied (root-only on this kernel)")
                continue
            except (OSError, ValueError) as exc:
                errors.append(f"{zone_dir}/energy_uj unreadable: {exc}")
                continue
            self.zones.append(RaplZone(zone_dir, name, domain, max_range, last))
        detail = "; ".join(errors) if errors else "no readable zone"
        if not any(z.domain == "cpu" for z in self.zones):
            self.reason_cpu = f"RAPL not readable: {detail}"
        if not any(z.domain == "dram" for z in self.zones):
            self.reason_dram = (
                f"RAPL not readable: {detail}" if self.reason_cpu else "RAPL has no dram zone on this CPU"
            )

    @property
    def available(self) -> bool:
        return bool(self.zones)

    def poll(self) -> None:
        """Accumulate deltas since the last poll, handling wrap-around."""
        with self._lock:
            for z in self.zones:
                try:
                    now = _read_int(os.path.join(z.path, "energy_uj"))
                except (OSError, ValueError):
                    continue
                if now < z.last_uj:
                    z.wraps += 1
                z.accumulated_uj += wrap_delta(z.last_uj, now, z.max_range_uj)
                z.last_uj = now

    def snapshot(self) -> dict[str, Optional[int]]:
        """Poll, then return accumulated microjoules per domain (None when not measured)."""
        self.poll()
        with self._lock:
            out: dict[str, Optional[int]] = {"cpu": None, "dram": None}
            for z in self.zones:
                out[z.domain] = (out[z.domain] or 0) + z.accumulated_uj
            return out

    def wraps(self) -> int:
        with self._lock:
            return sum(z.wraps for z in self.zones)


def rapl_delta_j(start: dict[str, Optional[int]], end: dict[str, Optional[int]], domain: str) -> Optional[float]:
    a, b = start.get(domain), end.get(domain)
    if a is None or b is None:
        return None
    return (b - a) / 1e6
