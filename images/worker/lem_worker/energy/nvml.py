"""NVML access: device selection, energy counters, instantaneous samples, update-period probe.

Facts this follows (see shared notes):
* nvmlDeviceGetTotalEnergyConsumption is mJ since driver load, Volta+ only; a decrease means a
  driver reload and invalidates the window.
* nvmlDeviceGetPowerUsage / field 185 (POWER_AVERAGE) is a 1-s average on Ampere+; field 186
  (POWER_INSTANT) is the instantaneous value where available.
* NVML indexes all physical GPUs: visible CUDA devices are mapped to NVML handles by UUID.
* MIG instances have no energy counter of their own: the parent GPU is measured (noted).

`nvml` is any object with pynvml's function names (the real module or the tests' fake).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from lem_worker.energy.clock import Clock
from lem_worker.energy.gpu_state import machine_state

FI_DEV_POWER_AVERAGE = 185
FI_DEV_POWER_INSTANT = 186
THERMAL_REASONS = 0x20 | 0x40
POWER_REASONS = 0x4 | 0x80


def import_pynvml() -> tuple[Optional[Any], Optional[str]]:
    try:
        import pynvml
    except ImportError:
        return None, "no NVML: pynvml not installed"
    return pynvml, None


def _s(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def field_value(fv: Any) -> Optional[float]:
    """Decode an nvmlFieldValue_t (returns None when NVML reported an error)."""
    if getattr(fv, "nvmlReturn", 0) != 0:
        return None
    vt = getattr(fv, "valueType", 1)
    val = fv.value
    attr = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}.get(vt, "uiVal")
    return float(getattr(val, attr))


def _safe(fn: Callable[[], Any]) -> Any:
    """An optional NVML query: None when this device or driver does not support it."""
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


@dataclass
class Gpu:
    """One measured physical GPU (a MIG instance is measured through its parent)."""

    logical_index: Optional[int]
    nvml_index: Optional[int]
    handle: Any
    uuid: str
    name: str
    mig_uuids: list[str] = field(default_factory=list)
    has_energy_counter: bool = True
    has_instant_power: bool = True
    notes: list[str] = field(default_factory=list)


@dataclass
class GpuSample:
    t: float
    power_instant_w: Optional[float]
    power_avg_w: Optional[float]
    temp_c: Optional[float]
    sm_clock_mhz: Optional[float]
    mem_used_mib: Optional[float]
    clock_reasons: Optional[int]
    sm_util_pct: Optional[float] = None  # nvmlDeviceGetUtilizationRates().gpu: % of the sample period a kernel ran


def parse_visible_devices(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    tokens = [t.strip() for t in value.split(",")]
    out: list[str] = []
    for t in tokens:
        if t == "" or t == "-1":
            break  # CUDA stops at the first invalid entry
        out.append(t)
    return out


class NvmlSession:
    """Opens NVML and selects exactly the GPUs the workload uses."""

    def __init__(self, nvml: Any, gpu_ids: Optional[list[int]] = None, visible: Optional[str] = None,
                 torch_uuids: Optional[list[str]] = None, use_env: bool = True) -> None:
        self.nv = nvml
        self.notes: list[str] = []
        self.gpus: list[Gpu] = []
        self.reason: Optional[str] = None
        if use_env and visible is None:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        try:
            nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001
            self.reason = f"no NVML: nvmlInit failed ({exc})"
            return
        self._opened = True
        try:
            try:
                self._select(gpu_ids, parse_visible_devices(visible), torch_uuids)
            except LookupError as exc:
                if not torch_uuids:
                    raise
                self.gpus = []
                self.notes.append(f"torch device UUIDs did not map to NVML ({exc}); fell back to CUDA_VISIBLE_DEVICES")
                self._select(gpu_ids, parse_visible_devices(visible), None)
        except Exception as exc:  # noqa: BLE001
            self.reason = f"NVML device selection failed: {exc}"
            self.gpus = []
        if not self.gpus and self.reason is None:
            self.reason = "no NVML device selected (no GPU visible)"

    # -- selection -------------------------------------------------------------------------
    def _by_uuid(self, uuid: str) -> tuple[Any, Optional[int]]:
        nv = self.nv
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            u = _s(nv.nvmlDeviceGetUUID(h))
            if u == uuid or u.startswith(uuid) or u == "GPU-" + uuid or u.startswith("GPU-" + uuid):
                return h, i
        raise LookupError(f"no NVML device with UUID {uuid}")

    def _select(self, gpu_ids: Optional[list[int]], visible: Optional[list[str]], torch_uuids: Optional[list[str]]) -> None:
        nv = self.nv
        count = nv.nvmlDeviceGetCount()
        # Logical (CUDA-visible) devices as identifiers.
        if torch_uuids:
            logical = list(torch_uuids)
            how = "torch device UUIDs"
        elif visible is not None:
            logical = visible
            how = "CUDA_VISIBLE_DEVICES"
        else:
            logical = [str(i) for i in range(count)]
            how = "all NVML devices (CUDA_VISIBLE_DEVICES unset)"
        wanted = gpu_ids if gpu_ids is not None else list(range(len(logical)))
        self.notes.append(f"GPUs mapped via {how}; measuring logical GPU(s) {wanted}")
        by_uuid: dict[str, Gpu] = {}
        for li in wanted:
            if li >= len(logical):
                raise LookupError(f"measurement.gpu_ids contains {li} but only {len(logical)} GPU(s) are visible")
            ident = logical[li]
            mig_uuid: Optional[str] = None
            if ident.startswith("MIG-"):
                mig_uuid = ident
                mh = nv.nvmlDeviceGetHandleByUUID(ident)
                parent = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mh)
                handle, index = parent, None
                puuid = _s(nv.nvmlDeviceGetUUID(parent))
                for i in range(count):
                    if _s(nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetHandleByIndex(i))) == puuid:
                        index = i
            elif ident.isdigit():
                index = int(ident)
                if index >= count:
                    raise LookupError(f"CUDA device {ident} has no NVML device (count {count})")
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                if how == "CUDA_VISIBLE_DEVICES" and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
                    self.notes.append("CUDA_VISIBLE_DEVICES uses indices without CUDA_DEVICE_ORDER=PCI_BUS_ID: "
                                      "CUDA and NVML orders may differ; UUIDs are unambiguous")
            else:
                handle, index = self._by_uuid(ident)
            uuid = _s(nv.nvmlDeviceGetUUID(handle))
            if uuid in by_uuid:
                if mig_uuid:
                    by_uuid[uuid].mig_uuids.append(mig_uuid)
                continue
            gpu = Gpu(li, index, handle, uuid, _s(nv.nvmlDeviceGetName(handle)))
            if mig_uuid:
                gpu.mig_uuids.append(mig_uuid)
                gpu.notes.append("MIG instance: NVML has no per-instance energy; the whole parent GPU is measured, "
                                 "including other instances' work")
            by_uuid[uuid] = gpu
            self.gpus.append(gpu)
        for gpu in self.gpus:
            try:
                nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)
            except Exception as exc:  # noqa: BLE001
                gpu.has_energy_counter = False
                gpu.notes.append(f"no total-energy counter (pre-Volta or unsupported: {exc}); energy integrates sampled power")
            gpu.has_instant_power = self._field(gpu, FI_DEV_POWER_INSTANT) is not None
            if not gpu.has_instant_power:
                gpu.notes.append("field 186 POWER_INSTANT unavailable: sampled power is nvmlDeviceGetPowerUsage "
                                 "(a 1-s average on Ampere and newer)")

    # -- reads -------------------------------------------------------------------------------
    def _field(self, gpu: Gpu, fid: int) -> Optional[float]:
        try:
            values = self.nv.nvmlDeviceGetFieldValues(gpu.handle, [fid])
        except Exception:  # noqa: BLE001
            return None
        if not values:
            return None
        v = field_value(values[0])
        return None if v is None else v / 1000.0  # mW -> W

    def read_energy_mj(self) -> dict[str, Optional[int]]:
        out: dict[str, Optional[int]] = {}
        for gpu in self.gpus:
            if not gpu.has_energy_counter:
                out[gpu.uuid] = None
                continue
            try:
                out[gpu.uuid] = int(self.nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
            except Exception:  # noqa: BLE001
                out[gpu.uuid] = None
        return out

    def sample(self, gpu: Gpu, t: float) -> GpuSample:
        nv = self.nv

        inst = self._field(gpu, FI_DEV_POWER_INSTANT) if gpu.has_instant_power else None
        avg = self._field(gpu, FI_DEV_POWER_AVERAGE)
        if avg is None:
            usage = _safe(lambda: nv.nvmlDeviceGetPowerUsage(gpu.handle))
            avg = None if usage is None else usage / 1000.0
        temp = _safe(lambda: nv.nvmlDeviceGetTemperature(gpu.handle, getattr(nv, "NVML_TEMPERATURE_GPU", 0)))
        sm = _safe(lambda: nv.nvmlDeviceGetClockInfo(gpu.handle, getattr(nv, "NVML_CLOCK_SM", 1)))
        mem = _safe(lambda: nv.nvmlDeviceGetMemoryInfo(gpu.handle))
        util = _safe(lambda: nv.nvmlDeviceGetUtilizationRates(gpu.handle))
        reasons_fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
        reasons = _safe(functools.partial(reasons_fn, gpu.handle)) if reasons_fn else None
        return GpuSample(
            t,
            inst,
            avg,
            None if temp is None else float(temp),
            None if sm is None else float(sm),
            None if mem is None else float(mem.used) / (1024 * 1024),
            None if reasons is None else int(reasons),
            None if util is None else float(util.gpu),
        )

    def probe_update_period(self, clock: Clock, probe_s: float = 1.0, poll_s: float = 0.004) -> Optional[float]:
        """Shortest interval between changes of the energy counter (or power reading), sleeping between polls."""
        if not self.gpus or probe_s <= 0:
            return None
        gpu = self.gpus[0]

        def read() -> Optional[float]:
            if gpu.has_energy_counter:
                try:
                    return float(self.nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
                except Exception:  # noqa: BLE001
                    return None
            s = self.sample(gpu, 0.0)
            return s.power_instant_w if s.power_instant_w is not None else s.power_avg_w

        t0 = clock.now()
        last = read()
        last_change: Optional[float] = None
        shortest: Optional[float] = None
        while clock.now() - t0 < probe_s:
            clock.sleep(poll_s)
            v = read()
            now = clock.now()
            if v is not None and v != last:
                if last_change is not None:
                    d = now - last_change
                    shortest = d if shortest is None else min(shortest, d)
                last_change = now
                last = v
        return shortest

    def environment(self) -> dict[str, Any]:
        nv = self.nv

        cuda = _safe(nv.nvmlSystemGetCudaDriverVersion)
        driver = _safe(nv.nvmlSystemGetDriverVersion)
        nvml_version = _safe(nv.nvmlSystemGetNVMLVersion)
        env: dict[str, Any] = {
            "driver_version": _s(driver) if driver else None,
            "nvml_version": _s(nvml_version) if nvml_version else None,
            "cuda_driver_version": f"{cuda // 1000}.{(cuda % 1000) // 10}" if isinstance(cuda, int) else None,
            "gpus": [],
        }
        for g in self.gpus:
            h = g.handle
            limit = _safe(lambda: nv.nvmlDeviceGetPowerManagementLimit(h))
            mig = _safe(lambda: nv.nvmlDeviceGetMigMode(h))
            state, unavailable = machine_state(nv, h)
            env["gpus"].append({
                "logical_index": g.logical_index,
                "nvml_index": g.nvml_index,
                "name": g.name,
                "uuid": g.uuid,
                "mig_instances": g.mig_uuids,
                "mig_mode": None if mig is None else (mig[0] if isinstance(mig, (list, tuple)) else mig),
                "power_limit_w": None if limit is None else limit / 1000.0,
                "persistence_mode": _safe(lambda: nv.nvmlDeviceGetPersistenceMode(h)),
                "sm_clock_max_mhz": _safe(lambda: nv.nvmlDeviceGetMaxClockInfo(h, getattr(nv, "NVML_CLOCK_SM", 1))),
                "mem_clock_max_mhz": _safe(lambda: nv.nvmlDeviceGetMaxClockInfo(h, getattr(nv, "NVML_CLOCK_MEM", 2))),
                "has_energy_counter": g.has_energy_counter,
                "has_instant_power": g.has_instant_power,
                **state,
                "unavailable": unavailable,
                "notes": g.notes,
            })
        return env

    def close(self) -> None:
        if getattr(self, "_opened", False):
            try:
                self.nv.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass
            self._opened = False
