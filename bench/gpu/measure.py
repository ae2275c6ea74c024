"""The in-process sections of the GPU acceptance check (bench/gpu/acceptance.py runs them):
idle baseline, energy counter against integrated power, harness and sampler overhead, warm reuse.
Each sets figures on the Report or returns the reason it could not."""
from __future__ import annotations

import gc
import statistics
import threading
import time
from typing import Any, Optional

from report import Report


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
