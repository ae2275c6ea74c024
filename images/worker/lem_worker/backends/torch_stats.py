"""PyTorch-backend facts for the extended efficiency metrics: weight bytes, the architecture config, torch's
peak allocation over the steady window, and the optional profiler pass (pytorch.profiler: true).

The profiler pass runs one full-generation batch under `torch.profiler.profile(with_flops=True)` after
every measured window has ended, so its overhead never reaches an energy figure. Its FLOPs are the
operators' own counts (matmuls and convolutions; torch counts no FLOPs for kernels it has no formula
for): ground truth for what the profiler can see, labelled `flops_per_output_token_profiler`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from lem_worker.log import log

GIB = 1024.0 ** 3


def model_bytes(model: Any) -> Optional[int]:
    try:
        return int(sum(p.numel() * p.element_size() for p in model.parameters()))
    except Exception:  # noqa: BLE001
        return None


def arch_config(model: Any) -> Optional[dict[str, Any]]:
    cfg = getattr(model, "config", None)
    try:
        return dict(cfg.to_dict()) if cfg is not None else None
    except Exception:  # noqa: BLE001
        return None


def peak_memory_stats(torch: Any, devices: Optional[list[int]]) -> Callable[[str], dict[str, Optional[float]]]:
    """engine_stats for run_generation: resets torch's peak counters at "begin", reads them at "end"."""
    def stats(phase: str) -> dict[str, Optional[float]]:
        if not devices or not torch.cuda.is_available():
            return {}
        if phase == "begin":
            for d in devices:
                torch.cuda.reset_peak_memory_stats(d)
            return {}
        return {"peak_allocated_gib": sum(torch.cuda.max_memory_allocated(d) for d in devices) / GIB}
    return stats


def profiler_pass(torch: Any, run_batch: Callable[[Any], int], batch: Any
                  ) -> Callable[[], tuple[dict[str, Optional[float]], dict[str, str], list[str]]]:
    """after_windows for run_generation: one profiled batch; (metrics, reasons for nulls, notes)."""
    def run() -> tuple[dict[str, Optional[float]], dict[str, str], list[str]]:
        name = "flops_per_output_token_profiler"
        try:
            from torch.profiler import ProfilerActivity, profile
        except ImportError:
            return {name: None}, {name: "torch.profiler is not available in this torch"}, []
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        log("profiler pass: one batch under torch.profiler (after the measured windows)")
        with profile(activities=acts, with_flops=True) as prof:
            out_tokens = run_batch(batch)
        flops = sum(getattr(e, "flops", 0) or 0 for e in prof.key_averages())
        if not out_tokens or not flops:
            return {name: None}, {name: "the profiled batch produced no output tokens or no counted FLOPs"}, []
        return ({name: flops / out_tokens}, {},
                [f"{name}: torch.profiler FLOPs count (with_flops) of one batch run after the energy windows, "
                 "ground truth for the operators torch has FLOP formulas for"])
    return run
