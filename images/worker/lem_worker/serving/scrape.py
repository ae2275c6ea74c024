"""Optional scrape of the server's Prometheus `/metrics` (vLLM exposes `vllm:*` series there)."""
from __future__ import annotations

import http.client
import threading
import time
from typing import Optional

from lem_worker.serving.client import Endpoint

MAX_SERIES = 200


def parse_prometheus(text: str, prefix: str = "vllm:") -> dict[str, float]:
    """`name{labels} value` lines whose name starts with `prefix` (at most MAX_SERIES)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or not line.startswith(prefix):
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) != 2:
            continue
        try:
            out[parts[0]] = float(parts[1])
        except ValueError:
            continue
        if len(out) >= MAX_SERIES:
            break
    return out


def scrape_metrics(origin: str, timeout: float = 5.0) -> Optional[dict[str, object]]:
    """{"series": {...}} from GET /metrics, or {"error": why}: a missing endpoint is recorded, not fatal."""
    ep = Endpoint.parse(origin)
    conn = ep.connect(timeout)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        if resp.status != 200:
            return {"error": f"GET /metrics returned {resp.status}"}
        return {"series": parse_prometheus(body)}
    except (OSError, http.client.HTTPException) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        conn.close()


# vLLM series worth a timeline (names without labels; vLLM renamed gpu_cache_usage_perc to kv_cache_usage_perc)
TIMELINE_SERIES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc",
                   "vllm:kv_cache_usage_perc", "vllm:generation_tokens_total", "vllm:prompt_tokens_total",
                   "vllm:request_success_total")


class MetricsPoller:
    """Scrapes /metrics every `interval_s` during the traffic into a compact timeline: per sample the seconds
    since `t0` (time.perf_counter) and the TIMELINE_SERIES values (labels kept in the key)."""

    def __init__(self, origin: str, t0: float, interval_s: float = 1.0) -> None:
        self.origin = origin
        self.t0 = t0
        self.interval_s = interval_s
        self.samples: list[dict[str, object]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            got = scrape_metrics(self.origin, timeout=min(5.0, self.interval_s * 2))
            t = round(time.perf_counter() - self.t0, 3)
            series = got.get("series") if got else None
            if isinstance(series, dict):
                keep = {k: v for k, v in series.items() if k.split("{", 1)[0] in TIMELINE_SERIES}
                self.samples.append({"t_s": t, "series": keep})
            else:
                self.errors += 1
            self._stop.wait(self.interval_s)

    def start(self) -> "MetricsPoller":
        self._thread.start()
        return self

    def stop(self) -> dict[str, object]:
        self._stop.set()
        self._thread.join()
        return {"interval_s": self.interval_s, "samples": self.samples[:3600], "failed_scrapes": self.errors}
