"""The state a GPU is in (performance state, application/locked clocks, ECC mode), read through
NVML once per run. Every value that cannot be read is None with the reason; nothing is guessed.

`nv` is any object with pynvml's function names (the real module or the tests' fake)."""
from __future__ import annotations

from typing import Any, Optional


def _query(nv: Any, fn_name: str, *args: Any) -> tuple[Any, Optional[str]]:
    """(value, None) or (None, reason) for an optional NVML query: the reason names the call and
    NVML's error (e.g. NotSupported on this GPU, NoPermission) or that this pynvml lacks it."""
    fn = getattr(nv, fn_name, None)
    if fn is None:
        return None, f"{fn_name} not available in this pynvml"
    try:
        return fn(*args), None
    except Exception as exc:  # noqa: BLE001
        return None, f"{fn_name}: {type(exc).__name__}: {exc}"


def machine_state(nv: Any, handle: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Performance state, application clocks, locked clocks and ECC mode of one GPU, read once.

    Returns (fields, unavailable): every None field has its reason in `unavailable`."""
    out: dict[str, Any] = {}
    why: dict[str, str] = {}

    def put(key: str, value: Any, reason: Optional[str]) -> None:
        out[key] = value
        if value is None:
            why[key] = reason or "not reported"

    pstate, r = _query(nv, "nvmlDeviceGetPerformanceState", handle)
    put("performance_state", None if pstate is None or int(pstate) == 32 else f"P{int(pstate)}",
        r or ("NVML reports the P-state as unknown" if pstate is not None else None))
    sm, mem = getattr(nv, "NVML_CLOCK_SM", 1), getattr(nv, "NVML_CLOCK_MEM", 2)
    for key, fn, kind in (("applications_clock_sm_mhz", "nvmlDeviceGetApplicationsClock", sm),
                          ("applications_clock_mem_mhz", "nvmlDeviceGetApplicationsClock", mem),
                          ("default_applications_clock_sm_mhz", "nvmlDeviceGetDefaultApplicationsClock", sm),
                          ("default_applications_clock_mem_mhz", "nvmlDeviceGetDefaultApplicationsClock", mem)):
        v, r = _query(nv, fn, handle, kind)
        put(key, None if v is None else int(v), r)
    put("locked_clocks", None, "NVML has no read-back for clocks locked with nvmlDeviceSetGpuLockedClocks / "
        "nvidia-smi -lgc (see clock_event_reasons bit 0x2 and the sampled SM clock)")
    reasons_fn = ("nvmlDeviceGetCurrentClocksEventReasons" if hasattr(nv, "nvmlDeviceGetCurrentClocksEventReasons")
                  else "nvmlDeviceGetCurrentClocksThrottleReasons")
    v, r = _query(nv, reasons_fn, handle)
    put("clock_event_reasons", None if v is None else int(v), r)
    ecc, r = _query(nv, "nvmlDeviceGetEccMode", handle)
    cur = pend = None
    if isinstance(ecc, (list, tuple)) and len(ecc) == 2:
        cur, pend = bool(ecc[0]), bool(ecc[1])
    elif ecc is not None:
        r = f"nvmlDeviceGetEccMode returned {ecc!r}"
    put("ecc_mode_current", cur, r)
    put("ecc_mode_pending", pend, r)
    return out, why
