"""GPU temperature and power for thermal gaps and `lem calibrate`.

`python3 -m lem_worker thermal --json [--gpus 0,1]` prints one JSON line:
{"gpus": [{"index": 0, "temp_c": 41.0, "power_w": 72.3}], "reason": null}
or, on a host without a sensor, {"gpus": [], "reason": "no NVML: pynvml not installed"}.

`python3 -m lem_worker calibrate --json --burn-s N` measures idle temperature and power, the energy
counter's update period, and how long the GPU takes to return to idle after an N-second burn of the
calibration workload; what it cannot measure is null with the reason.

A fake thermal source (LEM_FAKE_THERMAL=/path/to/fake.json, for tests only) plays a designed cooling
curve: after a burn ends at `heated_at` (epoch seconds), temperature and power decay exponentially
from hot to idle: T(t) = idle_c + (hot_c - idle_c) * exp(-(t - heated_at) / tau_s), power with
tau_s / 4. A worker `run` (or a calibrate burn) under the fake sets heated_at to its end time.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Optional

from lem_worker.energy.clock import RealClock
from lem_worker.energy.nvml import NvmlSession, import_pynvml
from lem_worker.log import log

FAKE_ENV = "LEM_FAKE_THERMAL"

Reading = dict[str, Any]


def _fake_params(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        p: dict[str, Any] = json.load(f)
    return p


def fake_reading(path: str, now: Optional[float] = None) -> Reading:
    """The designed cooling curve at time `now` (epoch seconds)."""
    p = _fake_params(path)
    t = time.time() if now is None else now
    heated = p.get("heated_at")
    idle_c, hot_c = float(p.get("idle_c", 35.0)), float(p.get("hot_c", 80.0))
    idle_w, hot_w = float(p.get("idle_w", 70.0)), float(p.get("hot_w", 300.0))
    tau = float(p.get("tau_s", 2.0))
    if heated is None:
        frac_t = frac_w = 0.0
    else:
        dt = max(0.0, t - float(heated))
        frac_t = math.exp(-dt / tau)
        frac_w = math.exp(-dt / (tau / 4))
    gpus = [
        {"index": i, "temp_c": round(idle_c + (hot_c - idle_c) * frac_t, 3), "power_w": round(idle_w + (hot_w - idle_w) * frac_w, 3)}
        for i in range(int(p.get("gpus", 1)))
    ]
    return {"gpus": gpus, "reason": None, "source": "fake cooling curve"}


def fake_heat(now: Optional[float] = None) -> None:
    """Under the fake source, a burn just ended: the curve restarts from hot."""
    path = os.environ.get(FAKE_ENV)
    if not path:
        return
    try:
        p = _fake_params(path)
        p["heated_at"] = time.time() if now is None else now
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(p, f)
        os.replace(tmp, path)
    except OSError as exc:  # a test fake must never fail a real run
        log(f"fake thermal source {path} not updated: {exc}")


def read_thermal(gpu_ids: Optional[list[int]] = None) -> Reading:
    """Temperature and power of the selected GPUs (all visible ones by default)."""
    fake = os.environ.get(FAKE_ENV)
    if fake:
        return fake_reading(fake)
    nvml, reason = import_pynvml()
    if nvml is None:
        return {"gpus": [], "reason": reason}
    session = NvmlSession(nvml, gpu_ids=gpu_ids)
    try:
        if not session.gpus:
            return {"gpus": [], "reason": session.reason}
        out = []
        for i, g in enumerate(session.gpus):
            s = session.sample(g, 0.0)
            power = s.power_instant_w if s.power_instant_w is not None else s.power_avg_w
            out.append({"index": g.logical_index if g.logical_index is not None else i, "temp_c": s.temp_c, "power_w": power})
        return {"gpus": out, "reason": None}
    finally:
        session.close()


def _max_temp(r: Reading) -> Optional[float]:
    temps = [g["temp_c"] for g in r["gpus"] if g.get("temp_c") is not None]
    return max(temps) if temps else None


def _sum_power(r: Reading) -> Optional[float]:
    p = [g["power_w"] for g in r["gpus"] if g.get("power_w") is not None]
    return sum(p) if p else None


def _measured(value: Optional[float], reason: Optional[str]) -> dict[str, Any]:
    return {"value": None if value is None else round(value, 4), "reason": None if value is not None else reason}


def _update_period(gpu_ids: Optional[list[int]]) -> tuple[Optional[float], str]:
    if os.environ.get(FAKE_ENV):
        return None, "the fake thermal source has no energy counter"
    nvml, reason = import_pynvml()
    if nvml is None:
        return None, f"{reason}; no GPU energy counter to probe"
    session = NvmlSession(nvml, gpu_ids=gpu_ids)
    try:
        if not session.gpus:
            return None, session.reason or "no GPU selected"
        period = session.probe_update_period(RealClock(), probe_s=2.0)
        return period, "the counter did not change during the 2 s probe"
    finally:
        session.close()


def calibrate(burn_s: float, idle_s: float, settle_max_s: float, gpu_ids: Optional[list[int]], poll_s: float = 0.5) -> dict[str, Any]:
    from lem_worker.calibration import make_burn, run_burn
    from lem_worker.config import CalibrationCfg

    first = read_thermal(gpu_ids)
    no_sensor = first["reason"] if _max_temp(first) is None else None
    temps: list[float] = []
    powers: list[float] = []
    t_end = time.monotonic() + idle_s
    while True:
        r = read_thermal(gpu_ids)
        t, p = _max_temp(r), _sum_power(r)
        if t is not None:
            temps.append(t)
        if p is not None:
            powers.append(p)
        if time.monotonic() >= t_end:
            break
        time.sleep(poll_s)
    idle_temp = sum(temps) / len(temps) if temps else None
    idle_power = sum(powers) / len(powers) if powers else None
    period, period_reason = _update_period(gpu_ids)

    device = "cpu"
    if not os.environ.get(FAKE_ENV) and no_sensor is None:
        device = "cuda"
    burn = make_burn(CalibrationCfg(matrix_size=4096 if device == "cuda" else 256, duration_s=burn_s, dtype="float32" if device == "cuda" else "float64", device=device))
    stats = run_burn(burn, burn_s, lambda: False)
    fake_heat()
    after = read_thermal(gpu_ids)
    peak = _max_temp(after)

    settle: Optional[float] = None
    settle_reason = no_sensor or "no idle temperature to return to"
    if idle_temp is not None and peak is not None:
        t0 = time.monotonic()
        settle_reason = f"did not return within 1 °C of idle in {settle_max_s} s"
        while time.monotonic() - t0 <= settle_max_s:
            cur = _max_temp(read_thermal(gpu_ids))
            if cur is not None and cur <= idle_temp + 1.0:
                settle = time.monotonic() - t0
                break
            time.sleep(poll_s)
    return {
        "idle_temp_c": _measured(idle_temp, no_sensor),
        "idle_power_w": _measured(idle_power, no_sensor or "the sensor reports no power"),
        "energy_counter_update_s": _measured(period, period_reason),
        "burn_s": round(stats.elapsed_s, 3),
        "burn_device": device,
        "burn_peak_temp_c": _measured(peak, no_sensor),
        "time_to_idle_s": _measured(settle, settle_reason),
        "source": first.get("source", "nvml" if no_sensor is None else None),
    }
