"""The meter and the device lock of one run: what every backend wraps its measured work in."""
from __future__ import annotations

import os
import threading
from typing import Any, Optional

from lem_worker.config import MeasurementCfg, WorkerConfig
from lem_worker.devicelock import DeviceLock, device_keys, holder_info
from lem_worker.energy.devices import open_devices, split_meter_kwargs
from lem_worker.energy.meter import Meter


def torch_visible_uuids() -> Optional[list[str]]:
    """UUIDs of the CUDA devices torch sees (maps CUDA_VISIBLE_DEVICES to NVML unambiguously)."""
    try:
        import sys

        if "torch" not in sys.modules:
            return None
        import torch

        if not torch.cuda.is_available():
            return None
        out = []
        for i in range(torch.cuda.device_count()):
            uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
            if uuid is None:
                return None
            s = str(uuid)
            out.append(s if s.startswith(("GPU-", "MIG-")) else "GPU-" + s)
        return out
    except Exception:  # noqa: BLE001
        return None


def meter_with(mcfg: MeasurementCfg, sync: Any = None, **kwargs: Any) -> Meter:
    """A meter over the devices `kwargs` choose (devices.DeviceChoice fields) with the given
    MeterOptions fields: the tests' injection point (fake NVML, clock, no RAPL)."""
    choice, options = split_meter_kwargs(kwargs)
    return Meter(mcfg, open_devices(mcfg.gpu_ids, choice), sync=sync, options=options)


def make_meter(cfg: WorkerConfig, sync: Any = None, **kwargs: Any) -> Meter:
    opts = dict(kwargs)
    probe = cfg.experiment.measurement.nvml_probe_s
    if probe is not None:
        opts.setdefault("probe_s", float(probe))
    opts.setdefault("torch_uuids", torch_visible_uuids())
    return meter_with(cfg.experiment.measurement, sync=sync, **opts)


def assigned_gpus() -> list[str]:
    """The GPU set lem placed this run's service on ($LEM_GPU_UUIDS, comma-separated UUIDs), or []."""
    return [u.strip() for u in os.environ.get("LEM_GPU_UUIDS", "").split(",") if u.strip()]


def lock_for_run(cfg: WorkerConfig, meter: Meter, stop: threading.Event) -> DeviceLock:
    """The device lock of a run: the GPUs its meter measures (by NVML UUID); without any, the GPU set
    lem placed it on ($LEM_GPU_UUIDS); else the host (`cpu`)."""
    uuids = [g.uuid for g in meter.session.gpus] if meter.session is not None and meter.has_gpu else []
    uuids = uuids or assigned_gpus()
    return DeviceLock(device_keys(uuids), cfg.experiment.measurement.device_lock_timeout_s,
                      holder_info(cfg.run.run_id, cfg.run.attempt), stop=stop)
