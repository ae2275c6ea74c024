"""Optional scrape of the server's Prometheus `/metrics` (vLLM exposes `vllm:*` series there)."""
from __future__ import annotations

import http.client
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
