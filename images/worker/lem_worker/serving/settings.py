"""The serving fields of `vllm:` and the `traffic:` section, read from exp.raw (src/config/traffic.ts is
the schema; the orchestrator has validated it, the worker re-checks what it uses and applies the same
defaults so hand-written configs work too)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

from lem_worker.config import Experiment
from lem_worker.errors import ConfigError

ARRIVALS = ("closed", "poisson", "constant", "gamma")
APIS = ("chat", "completions")
DEFAULT_SERVER_URL = "http://127.0.0.1:8000/v1"


@dataclass(frozen=True)
class TrafficCfg:
    arrival: str = "closed"
    rate_rps: Optional[float] = None
    burstiness: float = 1.0
    concurrency: Optional[int] = None
    requests: Optional[int] = None
    duration_s: Optional[float] = None
    seed: int = 0

    @property
    def open_loop(self) -> bool:
        return self.arrival != "closed"


@dataclass(frozen=True)
class Goodput:
    ttft_ms: Optional[float] = None
    tpot_ms: Optional[float] = None
    e2el_ms: Optional[float] = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2el_ms))


@dataclass(frozen=True)
class ServingCfg:
    base_url: str  # ends in /v1 (or the server's own API root), no trailing slash
    origin: str  # scheme://host:port, where /health and /metrics live
    managed: bool  # vllm.mode server: lem starts `vllm serve`
    api: str
    goodput: Goodput
    scrape_metrics: bool
    server_start_timeout_s: float
    traffic: TrafficCfg
    request_timeout_s: float = 600.0


def _num(obj: Mapping[str, Any], key: str, where: str, positive: bool = True) -> Optional[float]:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
        raise ConfigError(f"{where}.{key}: expected a positive number, got {v!r}")
    return float(v)


def _int(obj: Mapping[str, Any], key: str, where: str, minimum: int = 1) -> Optional[int]:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{where}.{key}: expected an integer >= {minimum}, got {v!r}")
    return v


def split_endpoint(url: str, where: str) -> tuple[str, str]:
    """(API base without trailing slash, origin) of an endpoint, parsed with a URL parser (never a character
    strip: ports and paths survive). A bare origin gets /v1."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ConfigError(f"{where}: {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {url!r} must be an http:// or https:// URL with a host, e.g. {DEFAULT_SERVER_URL}")
    del port
    path = parts.path.rstrip("/") or "/v1"
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, "")), origin


def traffic_cfg(raw: Mapping[str, Any]) -> TrafficCfg:
    t = raw.get("traffic")
    if t is None:
        return TrafficCfg()
    if not isinstance(t, dict):
        raise ConfigError("experiment.traffic: expected an object")
    p = "experiment.traffic"
    arrival = t.get("arrival", "closed")
    if arrival not in ARRIVALS:
        raise ConfigError(f"{p}.arrival: {arrival!r} is not one of {', '.join(ARRIVALS)}")
    rate = _num(t, "rate_rps", p)
    if arrival != "closed" and rate is None:
        raise ConfigError(f"{p}.rate_rps: arrival {arrival} is open loop and needs a rate (requests per second)")
    burst = _num(t, "burstiness", p) or 1.0
    seed = _int(t, "seed", p, minimum=0)
    return TrafficCfg(arrival=arrival, rate_rps=rate if arrival != "closed" else None,
                      burstiness=burst if arrival == "gamma" else 1.0, concurrency=_int(t, "concurrency", p),
                      requests=_int(t, "requests", p), duration_s=_num(t, "duration_s", p),
                      seed=0 if seed is None else seed)


def goodput_cfg(v: Mapping[str, Any]) -> Goodput:
    """vllm.goodput: latency targets (server mode and the offline engine under traffic)."""
    g = v.get("goodput") or {}
    if not isinstance(g, dict):
        raise ConfigError("experiment.vllm.goodput: expected an object")
    gp = "experiment.vllm.goodput"
    return Goodput(_num(g, "ttft_ms", gp), _num(g, "tpot_ms", gp), _num(g, "e2el_ms", gp))


def offline_traffic_backends() -> list[str]:
    """Backends whose offline engine takes requests one at a time (the registry's offlineTraffic)."""
    from lem_worker import jsoncontract

    return sorted(name for name, spec in jsoncontract.backends().items() if spec.get("offlineTraffic"))


def check_traffic_backend(exp: Experiment) -> None:
    """A `traffic:` section on a backend that runs its prompt set in batches is a config error (the orchestrator's
    servingRules says the same); never silently ignored."""
    if exp.raw.get("traffic") is None:
        return
    takes = offline_traffic_backends()
    if exp.backend not in takes:
        raise ConfigError(f"experiment.traffic: backend {exp.backend} runs its prompt set in batches and cannot submit "
                          f"requests at arrival times: traffic applies to backend {', '.join(takes)} (offline engine, "
                          "or a server with vllm.endpoint / vllm.mode: server); remove traffic or change the backend")


def serving_cfg(exp: Experiment) -> Optional[ServingCfg]:
    """The serving settings of a vllm experiment, or None when it measures the offline engine."""
    v = exp.raw.get("vllm") or {}
    if not isinstance(v, dict):
        return None
    endpoint = v.get("endpoint")
    mode = v.get("mode", "offline")
    if mode not in ("offline", "server"):
        raise ConfigError(f"experiment.vllm.mode: {mode!r} is not one of offline, server")
    if endpoint is None and mode != "server":
        return None  # the offline engine (with a traffic section: submitted request by request, backends/vllm_traffic.py)
    if endpoint is not None and not isinstance(endpoint, str):
        raise ConfigError(f"experiment.vllm.endpoint: expected a URL string, got {endpoint!r}")
    base, origin = split_endpoint(endpoint or DEFAULT_SERVER_URL, "experiment.vllm.endpoint")
    api = v.get("api", "chat")
    if api not in APIS:
        raise ConfigError(f"experiment.vllm.api: {api!r} is not one of {', '.join(APIS)}")
    scrape = v.get("scrape_metrics", False)
    if not isinstance(scrape, bool):
        raise ConfigError(f"experiment.vllm.scrape_metrics: expected true/false, got {scrape!r}")
    return ServingCfg(base_url=base, origin=origin, managed=mode == "server", api=api,
                      goodput=goodput_cfg(v),
                      scrape_metrics=scrape,
                      server_start_timeout_s=_num(v, "server_start_timeout_s", "experiment.vllm") or 900.0,
                      traffic=traffic_cfg(exp.raw),
                      request_timeout_s=_num(v, "request_timeout_s", "experiment.vllm") or 600.0)
