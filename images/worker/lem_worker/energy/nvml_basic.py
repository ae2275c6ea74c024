"""Phase-1 GPU energy: NVML total-energy counter at window edges (superseded by energy.nvml)."""
from __future__ import annotations

from typing import Any, Optional


def open_nvml() -> tuple[Optional[Any], Optional[str]]:
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None, "no NVML: pynvml not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError subclasses vary by version
        return None, f"no NVML: nvmlInit failed ({exc})"
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            return None, "no NVML device: nvmlDeviceGetCount() is 0"
    except Exception as exc:  # noqa: BLE001
        return None, f"no NVML device: {exc}"
    return pynvml, None


def read_total_energy_mj(nvml: Any) -> tuple[Optional[int], Optional[str]]:
    total = 0
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            total += int(nvml.nvmlDeviceGetTotalEnergyConsumption(h))
    except Exception as exc:  # noqa: BLE001
        return None, f"NVML total-energy counter unavailable (pre-Volta or unsupported): {exc}"
    return total, None
