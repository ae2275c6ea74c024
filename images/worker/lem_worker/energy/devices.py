"""The device layer under the meter (as Zeus separates its GPU/CPU devices from its monitor): which
energy sources a run has, chosen once when the run starts, and why one is missing.

  GPU   NVML (an NvmlSession over the selected GPUs) or none, with the reason (no pynvml, driver not
        loaded, no GPU selected, NVML disabled for the run)
  CPU   RAPL (intel-rapl / amd powercap counters; RaplMeter says per domain whether it reads)

The meter (meter.py) receives a `Devices` and never imports pynvml or reads powercap itself; tests
hand it fake devices (a FakeNvml module, a missing powercap root).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from lem_worker.energy.clock import Clock, RealClock
from lem_worker.energy.nvml import NvmlSession, import_pynvml
from lem_worker.energy.rapl import DEFAULT_ROOT, RaplMeter


@dataclass
class Devices:
    """The energy sources of one run. `gpus` None: no GPU energy, `gpu_reason` says why."""

    gpus: Optional[NvmlSession]
    gpu_reason: Optional[str]
    rapl: RaplMeter

    @property
    def has_gpu(self) -> bool:
        return self.gpus is not None and bool(self.gpus.gpus)

    def close(self) -> None:
        if self.gpus is not None:
            self.gpus.close()


@dataclass(frozen=True)
class DeviceChoice:
    """How to find the devices. nvml_module: "auto" (import pynvml), None (no GPU), or a module-like
    object (the tests' FakeNvml); visible/torch_uuids/use_env map CUDA_VISIBLE_DEVICES to NVML."""

    nvml_module: Any = "auto"
    rapl_root: str = DEFAULT_ROOT
    visible: Optional[str] = None
    torch_uuids: Optional[list[str]] = None
    use_env: bool = True


def open_devices(gpu_ids: Optional[list[int]], choice: DeviceChoice = DeviceChoice()) -> Devices:
    """NVML over `gpu_ids` (None: every visible GPU) or none with its reason, and RAPL."""
    rapl = RaplMeter(choice.rapl_root)
    module, reason = (import_pynvml() if choice.nvml_module == "auto"
                      else (choice.nvml_module, None if choice.nvml_module is not None else "no NVML: disabled"))
    if module is None:
        return Devices(None, reason, rapl)
    session = NvmlSession(module, gpu_ids, visible=choice.visible, torch_uuids=choice.torch_uuids, use_env=choice.use_env)
    if session.reason is not None:
        session.close()
        return Devices(None, session.reason, rapl)
    return Devices(session, None, rapl)


@dataclass(frozen=True)
class MeterOptions:
    """How the meter samples: its clock, the counter-period probe, the sampler thread, edge alignment."""

    clock: Clock = RealClock()
    probe_s: float = 1.0
    threaded: bool = True
    sampler_enabled: bool = True
    align_edges: bool = True


_DEVICE_KEYS = {"nvml_module", "rapl_root", "visible", "torch_uuids", "use_env"}
_OPTION_KEYS = {"clock", "probe_s", "threaded", "sampler_enabled", "align_edges"}


def split_meter_kwargs(kwargs: dict[str, Any]) -> tuple[DeviceChoice, MeterOptions]:
    """The keyword injections tests pass down through run_<backend>(…, **meter_kwargs), sorted into
    the device choice and the meter options (an unknown keyword is a programming error)."""
    unknown = set(kwargs) - _DEVICE_KEYS - _OPTION_KEYS
    if unknown:
        raise TypeError(f"unknown meter keyword(s): {', '.join(sorted(unknown))}")
    opts = {k: v for k, v in kwargs.items() if k in _OPTION_KEYS and v is not None}
    return (DeviceChoice(**{k: v for k, v in kwargs.items() if k in _DEVICE_KEYS}), MeterOptions(**opts))
