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
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "images", "worker")
sys.path.insert(0, WORKER)

from measure import energy_vs_power, harness_and_sampler, idle_baseline, warm_reuse  # noqa: E402
from report import Report, section, table  # noqa: E402

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
