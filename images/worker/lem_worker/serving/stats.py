"""Per-run serving statistics from the request records: latency percentiles (TTFT, ITL, TPOT, E2E),
counts, rates, goodput and what fell inside the steady window."""
from __future__ import annotations

import statistics
from typing import Any, Optional

from lem_worker.backends.generation import percentile
from lem_worker.serving.client import RequestRecord
from lem_worker.serving.settings import Goodput

QUANTILES = (50, 90, 95, 99)


def distribution(values: list[float]) -> dict[str, Optional[float]]:
    """mean and p50/p90/p95/p99 (linear interpolation), seconds; None when empty."""
    out: dict[str, Optional[float]] = {"mean": statistics.fmean(values) if values else None}
    for q in QUANTILES:
        out[f"p{q}"] = percentile(values, q)
    out["count"] = float(len(values))
    return out


def meets(rec: RequestRecord, g: Goodput) -> bool:
    """A completed request meets every latency target given (vLLM bench serve's goodput)."""
    if not rec.ok:
        return False
    checks = ((g.ttft_ms, rec.ttft), (g.tpot_ms, rec.tpot), (g.e2el_ms, rec.e2e))
    for target, value in checks:
        if target is None:
            continue
        if value is None or value * 1000.0 > target:
            return False
    return True


def in_window(records: list[RequestRecord], ws: float, we: float) -> dict[str, float]:
    """What the steady window [ws, we] holds: requests finished in it, and output tokens streamed in it
    (each request's usage-reported tokens attributed to its text chunks evenly, chunks counted by stamp)."""
    finished = 0
    tokens = 0.0
    tokens_known = True
    for r in records:
        if not r.ok:
            continue
        if r.end is not None and ws <= r.end <= we:
            finished += 1
        if not r.chunk_times:
            continue
        inside = sum(1 for c in r.chunk_times if ws <= c <= we)
        if inside == 0:
            continue
        if r.completion_tokens is None:
            tokens_known = False
            continue
        tokens += r.completion_tokens * inside / len(r.chunk_times)
    return {"requests": float(finished), "output_tokens": tokens if tokens_known else float("nan")}


def summarize(records: list[RequestRecord], span_s: float, goodput: Goodput) -> dict[str, Any]:
    ok = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    ttft = [r.ttft for r in ok if r.ttft is not None]
    e2e = [r.e2e for r in ok if r.e2e is not None]
    tpot = [t for t in (r.tpot for r in ok) if t is not None]
    itl = [g for r in ok for g in r.gaps()]  # every gap between streamed chunks, pooled (vLLM's ITL)
    usage_missing = sum(1 for r in ok if r.completion_tokens is None)
    out_tokens = sum(r.completion_tokens or 0 for r in ok)
    in_tokens = sum(r.prompt_tokens or 0 for r in ok)
    reasoning_reported = [r.reasoning_tokens for r in ok if r.reasoning_tokens is not None]
    good = sum(1 for r in ok if meets(r, goodput)) if goodput.any else None
    errors: dict[str, int] = {}
    for r in failed:
        key = (r.error or "unknown")[:120]
        errors[key] = errors.get(key, 0) + 1
    return {
        "requests_sent": len(records),
        "requests_completed": len(ok),
        "requests_failed": len(failed),
        "errors": errors,
        "ttft_s": distribution(ttft),
        "itl_s": distribution(itl),
        "tpot_s": distribution(tpot),
        "e2e_s": distribution(e2e),
        "output_tokens": out_tokens,
        "input_tokens": in_tokens,
        "usage_missing": usage_missing,
        "reasoning_chunks": sum(r.reasoning_chunks for r in ok),
        "content_chunks": sum(r.content_chunks for r in ok),
        "reasoning_tokens": sum(reasoning_reported) if reasoning_reported and len(reasoning_reported) == len(ok) else None,
        "good_requests": good,
        "span_s": span_s,
    }
