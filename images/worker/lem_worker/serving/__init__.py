"""Serving measurements: an OpenAI-compatible server (vLLM, or any server speaking the same protocol)
measured over HTTP under seeded traffic. `settings` reads the config (exp.raw), `traffic` draws the
arrival times, `client` streams requests, `stats` turns request records into latency/throughput
metrics and the steady window, `manage` starts and reuses `vllm serve`, `run` is the measurement flow."""
