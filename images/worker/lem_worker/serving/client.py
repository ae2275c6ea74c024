"""A streaming OpenAI-compatible HTTP client (stdlib http.client; one connection per request).

Each request streams `/v1/chat/completions` or `/v1/completions` with `stream_options: {include_usage:
true}`, so token counts come from the server's final usage chunk, never from counting chunks (a chunk
may carry several tokens). Times are `time.perf_counter()` stamps: sent, every chunk that carries text
(`content`, `reasoning_content` or `reasoning`: reasoning counts for TTFT and inter-token gaps and is
counted separately), and the end. A stream that ends without `[DONE]`, a non-200 status or a socket
error fails that request; the run goes on.
"""
from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from lem_worker.errors import ConfigError, WorkerError

Prompt = Union[str, list[int]]


@dataclass
class RequestRecord:
    index: int
    warmup: bool = False
    scheduled_s: Optional[float] = None  # planned send offset (open loop), seconds from the traffic start
    sent: float = 0.0
    first_token: Optional[float] = None
    end: Optional[float] = None
    chunk_times: list[float] = field(default_factory=list)  # chunks with text, reasoning included
    reasoning_chunks: int = 0
    content_chunks: int = 0
    ok: bool = False
    error: Optional[str] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None  # only when the server's usage splits them

    @property
    def ttft(self) -> Optional[float]:
        return None if self.first_token is None else self.first_token - self.sent

    @property
    def e2e(self) -> Optional[float]:
        return None if self.end is None else self.end - self.sent

    @property
    def tpot(self) -> Optional[float]:
        """(latency - TTFT) / (output tokens - 1), as vLLM's benchmark defines TPOT."""
        if not self.ok or self.ttft is None or self.e2e is None or not self.completion_tokens or self.completion_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.completion_tokens - 1)

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.chunk_times, self.chunk_times[1:])]


class ServerCheckError(WorkerError):
    """The server is not reachable, not ready or does not serve the model."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    path: str  # API root path, e.g. /v1

    @staticmethod
    def parse(base_url: str) -> "Endpoint":
        p = urlsplit(base_url)
        port = p.port or (443 if p.scheme == "https" else 80)
        return Endpoint(p.scheme, p.hostname or "127.0.0.1", port, p.path.rstrip("/"))

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def get_json(ep: Endpoint, path: str, timeout: float = 10.0) -> tuple[int, Any]:
    conn = ep.connect(timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        try:
            return resp.status, json.loads(body) if body else None
        except ValueError:
            return resp.status, body.decode("utf-8", "replace")
    finally:
        conn.close()


def check_server(base_url: str, origin: str, model_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """`/health` (where the server has it: a 404 is 'not provided') and `/v1/models`; the model must be served.
    Returns what was seen, for the result."""
    ep = Endpoint.parse(base_url)
    org = Endpoint.parse(origin)
    seen: dict[str, Any] = {"base_url": base_url}
    try:
        status, _ = get_json(org, "/health", timeout)
    except OSError as exc:
        raise ServerCheckError(f"the server at {origin} is not reachable: {type(exc).__name__}: {exc}") from None
    if status == 404:
        seen["health"] = "not provided (404)"
    elif status != 200:
        raise ServerCheckError(f"the server at {origin} is not ready: GET /health returned {status}")
    else:
        seen["health"] = "ok"
    try:
        status, body = get_json(ep, f"{ep.path}/models", timeout)
    except OSError as exc:
        raise ServerCheckError(f"GET {base_url}/models failed: {type(exc).__name__}: {exc}") from None
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ServerCheckError(f"GET {base_url}/models returned {status}, not a model list")
    served = [str(m.get("id")) for m in body["data"] if isinstance(m, dict) and m.get("id") is not None]
    seen["served_models"] = served
    if model_id not in served:
        raise ConfigError(f"experiment.model.id: {model_id!r} is not served at {base_url}; the server serves: "
                          + (", ".join(served) if served else "(no models)"))
    return seen


def request_body(api: str, model: str, prompt: Prompt, max_tokens: int, fixed: bool,
                 sampling: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "stream": True,
                            "stream_options": {"include_usage": True}, **sampling}
    if fixed:  # vLLM's extra sampling parameters; other servers ignore or reject them (then set fixed_length: false)
        body["min_tokens"] = max_tokens
        body["ignore_eos"] = True
    if api == "chat":
        if not isinstance(prompt, str):
            raise ConfigError("experiment.prompts: token-id prompts (synthetic) need vllm.api: completions")
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


def _chunk_text(obj: dict[str, Any]) -> tuple[str, str]:
    """(reasoning, content) text of one streamed chunk (chat delta or completions text)."""
    choices = obj.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return "", ""
    c = choices[0]
    delta = c.get("delta")
    if isinstance(delta, dict):
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        return str(reasoning), str(delta.get("content") or "")
    return "", str(c.get("text") or "")


def stream_request(ep: Endpoint, api: str, body: dict[str, Any], rec: RequestRecord, timeout: float,
                   on_first: Optional[Callable[[], None]] = None) -> RequestRecord:
    """Sends one streaming request and fills `rec` (sent/first-token/chunk/end stamps, usage, ok/error)."""
    path = f"{ep.path}/chat/completions" if api == "chat" else f"{ep.path}/completions"
    data = json.dumps(body).encode()
    conn = ep.connect(timeout)
    rec.sent = time.perf_counter()
    done = False
    try:
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            detail = resp.read(500).decode("utf-8", "replace").strip()
            rec.error = f"HTTP {resp.status}: {detail[:200]}"
            return rec
        while True:
            line = resp.readline()
            if not line:
                break
            now = time.perf_counter()
            s = line.strip()
            if not s.startswith(b"data:"):
                continue
            payload = s[5:].strip()
            if payload == b"[DONE]":
                done = True
                break
            try:
                obj = json.loads(payload)
            except ValueError:
                rec.error = f"malformed stream chunk: {payload[:80]!r}"
                return rec
            if not isinstance(obj, dict):
                continue
            if "error" in obj:
                rec.error = f"server error in stream: {str(obj['error'])[:200]}"
                return rec
            reasoning, content = _chunk_text(obj)
            if reasoning or content:
                if rec.first_token is None:
                    rec.first_token = now
                    if on_first is not None:
                        on_first()
                rec.chunk_times.append(now)
                rec.reasoning_chunks += bool(reasoning)
                rec.content_chunks += bool(content)
            usage = obj.get("usage")
            if isinstance(usage, dict):
                rec.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
                rec.completion_tokens = _int_or_none(usage.get("completion_tokens"))
                details = usage.get("completion_tokens_details")
                if isinstance(details, dict):
                    rec.reasoning_tokens = _int_or_none(details.get("reasoning_tokens"))
    except (OSError, http.client.HTTPException) as exc:
        rec.error = f"{type(exc).__name__}: {exc}"
        return rec
    finally:
        rec.end = time.perf_counter()
        conn.close()
    if not done:
        rec.error = "the stream ended before [DONE] (connection dropped)"
        return rec
    if rec.first_token is None:
        rec.error = "the stream carried no tokens"
        return rec
    rec.ok = True
    return rec


def _int_or_none(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None
