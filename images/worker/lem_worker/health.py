"""`python3 -m lem_worker health`: one JSON line describing what this interpreter can do."""
from __future__ import annotations

import importlib.util
import json
import platform
from typing import Any

from lem_worker import __version__


def _has(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def health() -> dict[str, Any]:
    info: dict[str, Any] = {
        "ok": True,
        "worker_version": __version__,
        "python_version": platform.python_version(),
        "numpy": _has("numpy"),
        "torch": _has("torch"),
        "transformers": _has("transformers"),
        "nvml": _has("pynvml"),
        "cuda": False,
    }
    if info["numpy"]:
        try:
            import numpy

            info["numpy_version"] = numpy.__version__
        except Exception as exc:  # noqa: BLE001
            info["numpy"] = False
            info["numpy_error"] = str(exc)
    if info["torch"]:
        try:
            import torch

            info["torch_version"] = str(torch.__version__)
            info["cuda"] = bool(torch.cuda.is_available())
        except Exception as exc:  # noqa: BLE001
            info["torch"] = False
            info["torch_error"] = str(exc)
    if info["nvml"]:
        try:
            import pynvml

            pynvml.nvmlInit()
            info["nvml_gpus"] = int(pynvml.nvmlDeviceGetCount())
            pynvml.nvmlShutdown()
        except Exception as exc:  # noqa: BLE001
            info["nvml_error"] = str(exc)
    return info


def print_health() -> int:
    print(json.dumps(health(), sort_keys=True), flush=True)
    return 0
