"""GPU acceptance: one prepared check of lem on one NVIDIA GPU (see bench/gpu/acceptance.sh).

Prints one table and writes one JSON file (gpu-acceptance.json) into --out. Every figure is a
measured number or null with its reason; nothing is estimated. Sections run in a fixed order under
one deadline; a section that would not fit is skipped with that reason.

  idle_baseline         idle GPU power in 3 windows: CV, drift (lem's baseline rules), spread of means
  energy_vs_power       NVML energy counter against integrated sampled power over a steady matmul burn
  harness_overhead      lem's measured-window path (Harness.run_pass) against a bare generate() loop
                        in this process, per shipped architecture (random-initialised)
  sampler_overhead      CPU share of lem's power sampler thread at 100 ms with real NVML
  warm_reuse            the same grid through run_pytorch with a warm engine cache against a fresh
                        load per run: loads and wall time
  campaign              a lem local-runtime campaign (node bin/lem.js) of the pytorch backend at
                        batch 1/8/32 x 3 cycles (split-plot order)

--dry-run: CPU, tiny sizes, no NVML: the plain-torch fixture model stands in for the architectures
(the same harness code runs), the NVML figures are null with their reasons; CI runs it.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "images", "worker")
sys.path.insert(0, WORKER)

TARGETS = {
    "harness_vs_bare": ">= 99 %",
    "sampler_cpu_share": "<= 0.5 %",
    "energy_counter_vs_integrated_power": "within 2 %",
    "idle_baseline_cv": "<= 5 % (lem baseline_max_cv)",
    "idle_baseline_drift": "<= 5 % (lem baseline_max_drift)",
}


class Report:
    def __init__(self, dry: bool, deadline: float) -> None:
        self.dry = dry
        self.deadline = deadline
        self.figures: dict[str, dict[str, Any]] = {}
        self.sections: dict[str, Any] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def figure(self, name: str, value: Optional[float], unit: str, reason: Optional[str] = None,
               ok: Optional[bool] = None, note: Optional[str] = None) -> None:
        self.figures[name] = {"value": value, "unit": unit, "target": TARGETS.get(name), "ok": ok if value is not None else None,
                              "reason": None if value is not None else (reason or "not measured"), "note": note}

    def null(self, names: list[tuple[str, str]], reason: str) -> None:
        for name, unit in names:
            if name not in self.figures:
                self.figure(name, None, unit, reason)


def section(rep: Report, name: str, need_s: float, figures: list[tuple[str, str]], fn: Callable[[], Optional[str]]) -> None:
    """Runs fn unless it would not fit the deadline; a returned string or an exception is the reason
    the figures it did not set are null."""
    t0 = time.monotonic()
    if rep.left() < need_s:
        rep.null(figures, f"skipped: {rep.left():.0f} s of the time budget left, the section needs about {need_s:.0f} s")
        rep.sections[name] = {"skipped": True}
        return
    try:
        why = fn()
    except Exception as exc:  # noqa: BLE001 - one failed section must not hide the others
        why = f"{type(exc).__name__}: {exc}"
    rep.null(figures, why or "not measured")
    rep.sections.setdefault(name, {})["elapsed_s"] = round(time.monotonic() - t0, 1)


# -- environment -------------------------------------------------------------------------------

def environment(args: argparse.Namespace) -> dict[str, Any]:
    env: dict[str, Any] = {"python": sys.executable, "python_version": platform.python_version(), "host": platform.node()}
    try:
        import torch

        env["torch"] = str(torch.__version__)
        env["cuda_available"] = bool(torch.cuda.is_available())
        env["gpu"] = torch.cuda.get_device_name(0) if env["cuda_available"] else None
    except ImportError:
        env["torch"] = None
    try:
        import transformers

        env["transformers"] = str(transformers.__version__)
    except ImportError:
        env["transformers"] = None
    try:
        import pynvml  # noqa: F401

        env["nvidia_ml_py"] = True
    except ImportError:
        env["nvidia_ml_py"] = False
    env["node"] = args.node or None
    if args.node:
        try:
            env["node_version"] = subprocess.run([args.node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError as exc:
            env["node_version"] = f"not runnable: {exc}"
    return env


def nvml_session() -> tuple[Any, Optional[str]]:
    from lem_worker.energy.nvml import NvmlSession, import_pynvml

    nv, why = import_pynvml()
    if nv is None:
        return None, why
    s = NvmlSession(nv, gpu_ids=[0], use_env=False)
    if s.reason:
        return None, s.reason
    return s, None


# -- models ------------------------------------------------------------------------------------

def exp_config(model: dict[str, Any], batch: int, tokens: int, prompts: int, window_s: float, dry: bool) -> Any:
    from lem_worker.config import parse_config

    return parse_config({
        "run": {"run_id": "acceptance", "experiment_id": "acceptance", "cycle": 1, "attempt": 1},
        "experiment": {"backend": "pytorch", "model": model, "precision": "fp32" if dry else "bf16",
                       "batching": {"strategy": "static", "batch_size": batch}, "max_input_tokens": 64,
                       "max_output_tokens": tokens, "prompts": {"source": "builtin", "count": prompts},
                       "warmup": {"mode": "fixed", "iterations": 1},
                       "measurement": {"idle_baseline_s": 0, "min_window_s": window_s, "sample_interval_ms": 100},
                       "extra": {"prefill_split": False}},
    })


def architectures(dry: bool) -> list[str]:
    if dry:
        return ["tiny-lm-fixture"]
    from lem_worker.backends.loader import shipped_architectures

    return shipped_architectures()


def model_of(arch: str) -> dict[str, Any]:
    if arch == "tiny-lm-fixture":
        return {"id": "tiny-lm-fixture", "no_weights": True}
    return {"id": arch, "no_weights": True, "architecture": arch}


def load(exp: Any) -> Any:
    if exp.model.id == "tiny-lm-fixture":
        from tests.fixtures.tiny_lm import make_loaded

        return make_loaded(d=64, layers=2)
    from lem_worker.backends.loader import load_transformers

    return load_transformers(exp)


def release(loaded: Any) -> None:
    torch = loaded.torch
    loaded.model = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- sections ----------------------------------------------------------------------------------

def idle_baseline(rep: Report) -> Optional[str]:
    if rep.dry:
        return "dry run: no NVML"
    from lem_worker.energy.baseline import power_stability
    from lem_worker.energy.clock import RealClock
    from lem_worker.energy.sampler import PowerSampler, power_of

    session, why = nvml_session()
    if session is None:
        return why
    windows = []
    for _ in range(3):
        sampler = PowerSampler(session, RealClock(), 0.1)
        sampler.start()
        time.sleep(5.0)
        sampler.stop()
        samples = next(iter(sampler.snapshot().values()))
        pts = [(s.t, p) for s in samples if (p := power_of(s)) is not None]
        st = power_stability(pts)
        if st:
            windows.append(st)
    if not windows:
        return "no idle power samples"
    cv = max(w["cv"] for w in windows)
    drift = max(abs(w["drift"]) for w in windows)
    means = [w["mean_w"] for w in windows]
    rep.figure("idle_baseline_cv", cv * 100, "% (worst of 3 × 5 s)", ok=cv <= 0.05)
    rep.figure("idle_baseline_drift", drift * 100, "% (worst of 3 × 5 s)", ok=drift <= 0.05)
    rep.figure("idle_baseline_mean_w", statistics.mean(means), "W")
    rep.figure("idle_baseline_spread_of_means", (max(means) - min(means)) / statistics.mean(means) * 100, "%")
    rep.sections["idle_baseline"] = {"windows": windows}
    return None


def energy_vs_power(rep: Report) -> Optional[str]:
    if rep.dry:
        return "dry run: no NVML"
    import torch

    from lem_worker.energy.clock import RealClock
    from lem_worker.energy.sampler import PowerSampler, integrate_power

    session, why = nvml_session()
    if session is None:
        return why
    gpu = session.gpus[0]
    nv = session.nv
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ a
    torch.cuda.synchronize()
    clock = RealClock()
    sampler = PowerSampler(session, clock, 0.05)
    sampler.start()
    time.sleep(1.0)  # samples before the window, for the edge interpolation
    torch.cuda.synchronize()
    t0 = clock.now()
    e0 = nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)
    while clock.now() - t0 < 10.0:
        for _ in range(20):
            a @ a
        torch.cuda.synchronize()
    t1 = clock.now()
    e1 = nv.nvmlDeviceGetTotalEnergyConsumption(gpu.handle)
    time.sleep(1.0)
    sampler.stop()
    samples = next(iter(sampler.snapshot().values()))
    integrated = integrate_power(samples, t0, t1)
    counter = (e1 - e0) / 1000.0
    if integrated is None or counter <= 0:
        return "no power samples or no energy counter change"
    diff = integrated / counter - 1
    rep.figure("energy_counter_vs_integrated_power", diff * 100, "% (integrated / counter - 1)", ok=abs(diff) <= 0.02,
               note=f"{counter:.0f} J counter, {integrated:.0f} J integrated over {t1 - t0:.1f} s, {len(samples)} samples")
    rep.figure("burn_mean_power_w", counter / (t1 - t0), "W")
    return None


def lem_pass(h: Any, stop: threading.Event) -> tuple[int, float]:
    t0 = time.perf_counter()
    stats = h.run_pass(False, stop)
    return stats.output_tokens, time.perf_counter() - t0


def harness_and_sampler(rep: Report) -> Optional[str]:
    import bench_harness as bh
    from lem_worker.backends.pytorch import Harness, prepare, tokenize
    from lem_worker.batching import make_batches
    from lem_worker.energy.clock import RealClock
    from lem_worker.energy.sampler import PowerSampler

    session, nvml_why = (None, "dry run: no NVML") if rep.dry else nvml_session()
    stop = threading.Event()
    per_arch: dict[str, Any] = {}
    sampler_cpu = [0.0, 0.0]
    rounds = 2 if rep.dry else 3
    for arch in architectures(rep.dry):
        if rep.left() < (5 if rep.dry else 60):
            per_arch[arch] = {"skipped": "time budget"}
            continue
        cfg = exp_config(model_of(arch), 2 if rep.dry else 8, 4 if rep.dry else 64, 4 if rep.dry else 16, 0.2, rep.dry)
        exp = cfg.experiment
        loaded = load(exp)
        batches = prepare(loaded, make_batches(tokenize(loaded, exp, []), exp.batching, exp.max_output_tokens))
        h = Harness(loaded, exp, batches)
        bh.bare_pass(h)
        lem_pass(h, stop)
        ratios = []
        for r in range(rounds):  # ABBA inside each round cancels linear drift
            if r % 2 == 0:
                b1, l1, l2, b2 = bh.bare_pass(h), lem_pass(h, stop), lem_pass(h, stop), bh.bare_pass(h)
            else:
                l1, b1, b2, l2 = lem_pass(h, stop), bh.bare_pass(h), bh.bare_pass(h), lem_pass(h, stop)
            ratios.append(bh.tps([l1, l2]) / bh.tps([b1, b2]))
        over_s, gen_s = bh.direct_overhead(h, stop, reps=20 if rep.dry else 50)
        row: dict[str, Any] = {"direct": gen_s / (gen_s + over_s), "ab_median": statistics.median(ratios),
                               "lem_overhead_per_pass_s": over_s, "generate_per_pass_s": gen_s, "device": loaded.device}
        if session is not None:
            for _ in range(2):
                sampler = PowerSampler(session, RealClock(), 0.1)
                sampler.start()
                _, dt = lem_pass(h, stop)
                sampler.stop()
                sampler_cpu[0] += sampler.cpu_s
                sampler_cpu[1] += dt
        per_arch[arch] = row
        release(loaded)
    measured = {a: r for a, r in per_arch.items() if "direct" in r}
    rep.sections["harness_overhead"] = {"per_architecture": per_arch,
                                        "method": "direct: generate() time / (generate() time + time lem adds around it, "
                                                  "replayed); ab_median: median of ABBA-interleaved throughput ratios"}
    if measured:
        worst = min(r["direct"] for r in measured.values())
        rep.figure("harness_vs_bare", worst * 100, "% (worst architecture, direct)", ok=worst >= 0.99,
                   note=("tiny plain-torch fixture model on CPU (dry run)" if rep.dry else ", ".join(measured)))
        rep.figure("harness_vs_bare_ab_median", min(r["ab_median"] for r in measured.values()) * 100, "% (A/B throughput, noise floor check)",
                   note="tiny passes on a shared CPU: noise" if rep.dry else None)
    if session is None:
        rep.figure("sampler_cpu_share", None, "%", nvml_why)
    elif sampler_cpu[1] > 0:
        share = sampler_cpu[0] / sampler_cpu[1]
        rep.figure("sampler_cpu_share", share * 100, "% of a core at 100 ms", ok=share <= 0.005)
    return None if measured else "no architecture measured"


def warm_reuse(rep: Report) -> Optional[str]:
    from lem_worker.backends.pytorch import run_pytorch

    archs = architectures(rep.dry)
    batches = [1, 8]
    order = [(a, b) for a in archs for b in batches]  # split-plot order: each engine once
    out: dict[str, Any] = {}
    for mode in ("warm", "cold"):
        cache: dict[str, Any] = {}
        loads = [0]

        def loader(exp: Any) -> Any:
            key = exp.model.id
            if mode == "warm" and key in cache:
                return cache[key]
            for old in list(cache.values()):
                release(old)
            cache.clear()
            loads[0] += 1
            cache[key] = load(exp)
            return cache[key]

        t0 = time.perf_counter()
        for arch, b in order:
            cfg = exp_config(model_of(arch), b, 4 if rep.dry else 32, 8 if rep.dry else 16, 0.2 if rep.dry else 1.0, rep.dry)
            run_pytorch(cfg, threading.Event(), loader=loader, nvml_module=None, rapl_root="/nonexistent/powercap", use_env=False)
        out[mode] = {"loads": loads[0], "wall_s": time.perf_counter() - t0, "runs": len(order)}
        for old in list(cache.values()):
            release(old)
    rep.sections["warm_reuse"] = out
    rep.figure("warm_reuse_loads_on", out["warm"]["loads"], f"loads for {len(order)} runs")
    rep.figure("warm_reuse_loads_off", out["cold"]["loads"], f"loads for {len(order)} runs")
    rep.figure("warm_reuse_wall_s_on", out["warm"]["wall_s"], "s")
    rep.figure("warm_reuse_wall_s_off", out["cold"]["wall_s"], "s")
    rep.figure("warm_reuse_speedup", out["cold"]["wall_s"] / out["warm"]["wall_s"], "× (off / on)")
    return None


def campaign(rep: Report, args: argparse.Namespace) -> Optional[str]:
    if not args.node:
        return "node not found on this machine: lem's CLI needs Node.js >= 20.19 (and the built dist/ with node_modules)"
    lem = os.path.join(ROOT, "bin", "lem.js")
    if not os.path.isfile(os.path.join(ROOT, "dist", "src", "cli", "main.js")):
        return "dist/ is not built (run npm run build, or carry dist and node_modules)"
    work = os.path.join(args.out, "campaign")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    if rep.dry:
        model = '{id: tiny-lm-fixture, no_weights: true}\n  precision: fp32\n  extra: {loader: "tests.fixtures.tiny_lm:make_loaded"}'
        sizes, cycles, tokens, prompts, window, baseline = "[8]", 1, 4, 16, 0.2, 0  # one run: the CLI path end to end
    else:
        model = "{id: gpt2, no_weights: true, architecture: gpt2}\n  precision: bf16"
        sizes, cycles, tokens, prompts, window, baseline = "[1, 8, 32]", 3, 32, 64, 2, 2
    yaml = (f"campaign_name: gpu-acceptance\nbase_config:\n  backend: pytorch\n  model: {model}\n"
            f"  max_output_tokens: {tokens}\n  max_input_tokens: 64\n  prompts: {{source: builtin, count: {prompts}}}\n"
            f"  warmup: {{mode: fixed, iterations: 2}}\n  measurement: {{idle_baseline_s: {baseline}, min_window_s: {window}}}\n"
            f"vary:\n  batching.batch_size: {sizes}\ncycles: {cycles}\nstructure: split_plot\nthermal_gap: 0\nruntime: local\nretries: 0\n")
    path = os.path.join(work, "campaign.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(yaml)
    env = {**os.environ, "LEM_PYTHON": sys.executable}
    t0 = time.monotonic()
    try:
        r = subprocess.run([args.node, lem, "--state", os.path.join(work, "state"), "campaign", "run", path, "--json"],
                           capture_output=True, text=True, timeout=max(10.0, rep.left() - 10), env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "the campaign did not finish inside the time budget"
    wall = time.monotonic() - t0
    with open(os.path.join(work, "stderr.txt"), "w", encoding="utf-8") as fh:
        fh.write(r.stderr)
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError:
        return f"lem campaign run exited {r.returncode} without JSON: {r.stderr.strip().splitlines()[-1:] or ''}"
    outcome = doc.get("outcome", {})
    rows = [{"experiment": s.get("name"), "metric": s.get("metric"), "n": (s.get("stats") or {}).get("n"),
             "mean": (s.get("stats") or {}).get("mean"), "ci95": (s.get("stats") or {}).get("ci95"), "reason": s.get("reason")}
            for s in doc.get("summary", [])]
    rep.sections["campaign"] = {"campaign": doc.get("campaign"), "outcome": outcome, "wall_s": wall, "summary": rows,
                                "yaml": yaml, "exit_code": r.returncode}
    rep.figure("campaign_runs_succeeded", outcome.get("succeeded"), f"of {sum(int(outcome.get(k, 0)) for k in ('succeeded', 'failed', 'interrupted', 'pending'))}")
    rep.figure("campaign_wall_s", wall, "s")
    tps = [x for x in rows if x["metric"] == "output_tokens_per_s" and x["mean"] is not None]
    jpt = [x for x in rows if x["metric"] == "j_per_output_token"]
    if tps:
        rep.figure("campaign_tokens_per_s_max", max(x["mean"] for x in tps), "tokens/s (best batch size)")
    jm = [x for x in jpt if x["mean"] is not None]
    if jm:
        rep.figure("campaign_j_per_token_min", min(x["mean"] for x in jm), "J/token (best batch size)")
    else:
        rep.figure("campaign_j_per_token_min", None, "J/token", next((x["reason"] for x in jpt if x["reason"]), "no energy measured"))
    return None if r.returncode == 0 else f"lem campaign run exited {r.returncode}"


# -- output ------------------------------------------------------------------------------------

def fmt(v: Optional[float]) -> str:
    if v is None:
        return "null"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"


def table(rep: Report) -> str:
    rows = [("figure", "value", "unit", "target", "ok", "reason / note")]
    for name, f in rep.figures.items():
        ok = "" if f["ok"] is None else ("yes" if f["ok"] else "NO")
        rows.append((name, fmt(f["value"]), f["unit"], f["target"] or "", ok, f["reason"] or f["note"] or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(widths[i]) if i < 5 else c for i, c in enumerate(r)) for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--node", default="")
    ap.add_argument("--budget-s", type=float, default=450.0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    rep = Report(args.dry_run, t0 + args.budget_s)
    env = environment(args)
    import lem_worker.log as lw_log

    lw_log.QUIET = True
    nvml_figs = [("idle_baseline_cv", "%"), ("idle_baseline_drift", "%"), ("idle_baseline_mean_w", "W"), ("idle_baseline_spread_of_means", "%")]
    if env.get("torch") is None:
        why = f"no torch in {sys.executable}"
        rep.null(nvml_figs + [("energy_counter_vs_integrated_power", "%"), ("harness_vs_bare", "%"), ("sampler_cpu_share", "%"),
                              ("warm_reuse_speedup", "×"), ("campaign_runs_succeeded", "runs")], why)
    elif not args.dry_run and not env.get("cuda_available"):
        why = "no CUDA GPU visible to torch (run with --dry-run for the CPU check)"
        rep.null(nvml_figs + [("energy_counter_vs_integrated_power", "%"), ("harness_vs_bare", "%"), ("sampler_cpu_share", "%"),
                              ("warm_reuse_speedup", "×"), ("campaign_runs_succeeded", "runs")], why)
    else:
        if not args.dry_run and env.get("transformers") is None:
            rep.sections["note"] = "transformers missing: the architecture sections fail with that reason"
        section(rep, "idle_baseline", 0 if args.dry_run else 20, nvml_figs, lambda: idle_baseline(rep))
        section(rep, "energy_vs_power", 0 if args.dry_run else 20, [("energy_counter_vs_integrated_power", "%")], lambda: energy_vs_power(rep))
        section(rep, "harness_overhead", 5 if args.dry_run else 60, [("harness_vs_bare", "%"), ("sampler_cpu_share", "%")], lambda: harness_and_sampler(rep))
        section(rep, "campaign", 10 if args.dry_run else 120, [("campaign_runs_succeeded", "runs")], lambda: campaign(rep, args))
        section(rep, "warm_reuse", 3 if args.dry_run else 45, [("warm_reuse_speedup", "×")], lambda: warm_reuse(rep))
    doc = {"schema": "lem.gpu_acceptance/1", "dry_run": args.dry_run, "started_at": started,
           "elapsed_s": round(time.monotonic() - t0, 1), "environment": env, "figures": rep.figures, "sections": rep.sections}
    path = os.path.join(args.out, "gpu-acceptance.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, default=str)
    print(f"lem GPU acceptance{' (DRY RUN: CPU, tiny sizes, no NVML)' if args.dry_run else ''} — {env.get('gpu') or 'no GPU'}, "
          f"{doc['elapsed_s']} s")
    print(table(rep))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
