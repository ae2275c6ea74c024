"""Seeded arrival processes.

Open loop (poisson, gamma, constant): request i is sent at `offsets[i]` seconds after the start,
whatever the server is doing. Inter-arrival times follow vLLM's serving benchmark (`vllm bench serve`):
Gamma(shape = burstiness, scale = 1 / (rate × burstiness)), so burstiness 1 is a Poisson process
(exponential gaps), larger is more regular and smaller is burstier; constant spacing is 1 / rate. Like
vLLM's benchmark, the drawn gaps are rescaled so that the last arrival lands at N / rate: the offered
rate over the run is exactly the configured one. Closed loop has no offsets: `concurrency` workers each
send their next request when their previous one finishes.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from lem_worker.serving.settings import TrafficCfg


def inter_arrivals(arrival: str, rate: float, n: int, burstiness: float, rng: np.random.Generator) -> np.ndarray:
    """n inter-arrival gaps (seconds) of an open-loop process, before rescaling."""
    if arrival == "constant":
        return np.full(n, 1.0 / rate)
    shape = 1.0 if arrival == "poisson" else burstiness
    return rng.gamma(shape=shape, scale=1.0 / (rate * shape), size=n)


def arrival_offsets(t: TrafficCfg, n: int, rescale: bool = True) -> np.ndarray:
    """Send times (seconds from the start) of n open-loop requests; the first request is sent at its first gap
    (as vLLM's benchmark does), the last at n / rate when rescaled."""
    assert t.open_loop and t.rate_rps is not None
    rng = np.random.default_rng(t.seed)
    gaps = inter_arrivals(t.arrival, t.rate_rps, n, t.burstiness, rng)
    offsets = np.cumsum(gaps)
    if rescale and n > 0 and offsets[-1] > 0:
        offsets = offsets * ((n / t.rate_rps) / offsets[-1])
    return offsets


def planned_requests(t: TrafficCfg, prompt_count: int) -> Optional[int]:
    """How many measured requests a run sends: traffic.requests, else the prompt count, else (duration_s
    alone) unbounded: None."""
    if t.requests is not None:
        return t.requests
    if t.duration_s is not None:
        return None
    return prompt_count


def open_loop_count(t: TrafficCfg, planned: Optional[int]) -> int:
    """Requests to draw offsets for: the planned count, or enough to cover duration_s at the rate."""
    if planned is not None:
        return planned
    assert t.duration_s is not None and t.rate_rps is not None
    return max(1, int(np.ceil(t.duration_s * t.rate_rps)))
