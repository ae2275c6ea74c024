"""CONFIG.json loading and validation.

The orchestrator sends the *resolved* experiment config (src/config/experiment.ts, defaults
filled in). The worker re-checks the fields it uses, applies the same defaults when a field is
absent (so hand-written configs work too) and rejects anything malformed with ConfigError
(exit 2) naming the field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from lem_worker.errors import ConfigError

BACKENDS = ("pytorch", "vllm", "tensorrt", "calibration")

DECODER_PRESETS: dict[str, dict[str, Any]] = {
    "deterministic": {"do_sample": False, "temperature": 0.0, "top_p": 1.0, "top_k": 0},
    "standard": {"do_sample": True, "temperature": 1.0, "top_p": 0.95, "top_k": 50},
    "creative": {"do_sample": True, "temperature": 1.3, "top_p": 0.98, "top_k": 100},
    "factual": {"do_sample": True, "temperature": 0.3, "top_p": 0.9, "top_k": 20},
}

_MISSING = object()


def _get(obj: Mapping[str, Any], key: str, path: str, kind: Any, default: Any = _MISSING) -> Any:
    if key not in obj or obj[key] is None:
        if default is _MISSING:
            raise ConfigError(f"{path}.{key}: required field is missing")
        return default
    value = obj[key]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}.{key}: expected a number, got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{path}.{key}: expected an integer, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}.{key}: expected true/false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str) or value == "":
            raise ConfigError(f"{path}.{key}: expected a non-empty string, got {value!r}")
        return value
    if kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}.{key}: expected an object, got {value!r}")
        return value
    if kind is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}.{key}: expected a list, got {value!r}")
        return value
    raise AssertionError(kind)


def _enum(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _positive(value: float, where: str, allow_zero: bool = False) -> float:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{where}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    cycle: int
    attempt: int


@dataclass(frozen=True)
class MeasurementCfg:
    idle_baseline_s: float = 10.0
    min_window_s: float = 30.0
    sample_interval_ms: int = 100
    cross_check_threshold: float = 0.05
    idle_baseline_max_s: float = 60.0
    baseline_max_cv: float = 0.05
    baseline_max_drift: float = 0.05
    gpu_ids: Optional[list[int]] = None
    timeout_s: Optional[float] = None
    #: How long to wait for another measurement to release this run's devices (see devicelock.py).
    device_lock_timeout_s: float = 3600.0


@dataclass(frozen=True)
class CalibrationCfg:
    matrix_size: int = 256
    duration_s: float = 2.0
    dtype: str = "float64"
    device: str = "cpu"


@dataclass(frozen=True)
class ModelCfg:
    id: str
    revision: Optional[str] = None
    no_weights: bool = False
    architecture: Optional[str] = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class BatchingCfg:
    strategy: str = "static"
    batch_size: int = 1
    max_tokens_per_batch: Optional[int] = None


@dataclass(frozen=True)
class DecoderCfg:
    preset: str = "deterministic"
    do_sample: bool = False
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: Optional[float] = None
    fixed_length: bool = True


@dataclass(frozen=True)
class PromptsCfg:
    source: str = "builtin"
    name: str = "mixed"
    count: Optional[int] = 100
    path: Optional[str] = None
    column: Optional[str] = None
    dataset: Optional[str] = None
    subset: Optional[str] = None
    split: str = "test"
    input_len: Optional[int] = None


@dataclass(frozen=True)
class WarmupCfg:
    mode: str = "fixed"
    iterations: int = 3
    cv_threshold: float = 0.05
    window: int = 3
    max_iterations: int = 30


@dataclass(frozen=True)
class PytorchCfg:
    device_map: Optional[Union[str, dict[str, Any]]] = None
    max_memory: Optional[dict[str, str]] = None
    attn_implementation: Optional[str] = None
    torch_compile: bool = False
    static_kv_cache: bool = False


@dataclass(frozen=True)
class VllmCfg:
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_num_seqs: Optional[int] = None
    max_model_len: Optional[int] = None
    enforce_eager: bool = False
    enable_prefix_caching: Optional[bool] = None


@dataclass(frozen=True)
class TensorrtCfg:
    tp_size: int = 1
    max_batch_size: Optional[int] = None
    max_num_tokens: Optional[int] = None
    kv_cache_free_gpu_memory_fraction: Optional[float] = None
    engine_dir: Optional[str] = None


@dataclass(frozen=True)
class Experiment:
    backend: str
    name: Optional[str]
    measurement: MeasurementCfg
    extra: dict[str, Any]
    raw: dict[str, Any]
    calibration: Optional[CalibrationCfg] = None
    model: Optional[ModelCfg] = None
    precision: str = "bf16"
    quantization: str = "none"
    batching: BatchingCfg = field(default_factory=BatchingCfg)
    decoder: DecoderCfg = field(default_factory=DecoderCfg)
    max_input_tokens: int = 512
    max_output_tokens: int = 128
    prompts: PromptsCfg = field(default_factory=PromptsCfg)
    warmup: WarmupCfg = field(default_factory=WarmupCfg)
    pytorch: PytorchCfg = field(default_factory=PytorchCfg)
    vllm: VllmCfg = field(default_factory=VllmCfg)
    tensorrt: TensorrtCfg = field(default_factory=TensorrtCfg)


@dataclass(frozen=True)
class WorkerConfig:
    run: RunInfo
    experiment: Experiment


def _measurement(obj: Mapping[str, Any]) -> MeasurementCfg:
    p = "experiment.measurement"
    gpu_ids_raw = _get(obj, "gpu_ids", p, list, None)
    gpu_ids: Optional[list[int]] = None
    if gpu_ids_raw is not None:
        gpu_ids = []
        for i, g in enumerate(gpu_ids_raw):
            if isinstance(g, bool) or not isinstance(g, int) or g < 0:
                raise ConfigError(f"{p}.gpu_ids[{i}]: expected a non-negative integer, got {g!r}")
            gpu_ids.append(g)
    timeout = _get(obj, "timeout_s", p, float, None)
    m = MeasurementCfg(
        idle_baseline_s=_positive(_get(obj, "idle_baseline_s", p, float, 10.0), f"{p}.idle_baseline_s", True),
        min_window_s=_positive(_get(obj, "min_window_s", p, float, 30.0), f"{p}.min_window_s", True),
        sample_interval_ms=_get(obj, "sample_interval_ms", p, int, 100),
        cross_check_threshold=_positive(_get(obj, "cross_check_threshold", p, float, 0.05), f"{p}.cross_check_threshold"),
        idle_baseline_max_s=_positive(_get(obj, "idle_baseline_max_s", p, float, 60.0), f"{p}.idle_baseline_max_s", True),
        baseline_max_cv=_positive(_get(obj, "baseline_max_cv", p, float, 0.05), f"{p}.baseline_max_cv"),
        baseline_max_drift=_positive(_get(obj, "baseline_max_drift", p, float, 0.05), f"{p}.baseline_max_drift"),
        gpu_ids=gpu_ids,
        timeout_s=_positive(timeout, f"{p}.timeout_s") if timeout is not None else None,
        device_lock_timeout_s=_positive(_get(obj, "device_lock_timeout_s", p, float, 3600.0), f"{p}.device_lock_timeout_s"),
    )
    if m.sample_interval_ms < 10:
        raise ConfigError(f"{p}.sample_interval_ms: must be >= 10, got {m.sample_interval_ms}")
    return m


def _calibration(obj: Mapping[str, Any]) -> CalibrationCfg:
    p = "experiment.calibration"
    c = CalibrationCfg(
        matrix_size=_get(obj, "matrix_size", p, int, 256),
        duration_s=_get(obj, "duration_s", p, float, 2.0),
        dtype=_enum(_get(obj, "dtype", p, str, "float64"), ("float32", "float64"), f"{p}.dtype"),
        device=_enum(_get(obj, "device", p, str, "cpu"), ("cpu", "cuda"), f"{p}.device"),
    )
    if not 8 <= c.matrix_size <= 16384:
        raise ConfigError(f"{p}.matrix_size: must be within 8..16384, got {c.matrix_size}")
    if not 0 < c.duration_s <= 3600:
        raise ConfigError(f"{p}.duration_s: must be within (0, 3600], got {c.duration_s}")
    return c


def _decoder(obj: Mapping[str, Any]) -> DecoderCfg:
    p = "experiment.decoder"
    preset = _enum(_get(obj, "preset", p, str, "deterministic"), tuple(DECODER_PRESETS), f"{p}.preset")
    base = DECODER_PRESETS[preset]
    d = DecoderCfg(
        preset=preset,
        do_sample=_get(obj, "do_sample", p, bool, base["do_sample"]),
        temperature=_get(obj, "temperature", p, float, base["temperature"]),
        top_p=_get(obj, "top_p", p, float, base["top_p"]),
        top_k=_get(obj, "top_k", p, int, base["top_k"]),
        repetition_penalty=_get(obj, "repetition_penalty", p, float, None),
        fixed_length=_get(obj, "fixed_length", p, bool, True),
    )
    if d.temperature < 0:
        raise ConfigError(f"{p}.temperature: must be >= 0")
    if not 0 < d.top_p <= 1:
        raise ConfigError(f"{p}.top_p: must be within (0, 1]")
    if d.top_k < 0:
        raise ConfigError(f"{p}.top_k: must be >= 0")
    if preset == "deterministic" and (d.do_sample or d.temperature > 0):
        raise ConfigError(f"{p}: the deterministic preset is greedy: do not combine it with do_sample or a temperature above 0")
    return d


def _prompts(obj: Mapping[str, Any]) -> PromptsCfg:
    p = "experiment.prompts"
    source = _enum(_get(obj, "source", p, str, "builtin"), ("builtin", "file", "huggingface", "synthetic"), f"{p}.source")
    count = _get(obj, "count", p, int, None if source == "file" else 100)
    if count is not None and count <= 0:
        raise ConfigError(f"{p}.count: must be > 0")
    if source == "builtin":
        return PromptsCfg(source=source, name=_get(obj, "name", p, str, "mixed"), count=count)
    if source == "file":
        return PromptsCfg(source=source, path=_get(obj, "path", p, str), column=_get(obj, "column", p, str, None), count=count)
    if source == "huggingface":
        return PromptsCfg(
            source=source,
            dataset=_get(obj, "dataset", p, str),
            subset=_get(obj, "subset", p, str, None),
            split=_get(obj, "split", p, str, "test"),
            column=_get(obj, "column", p, str, "text"),
            count=count,
        )
    input_len = _get(obj, "input_len", p, int)
    if input_len <= 0:
        raise ConfigError(f"{p}.input_len: must be > 0")
    return PromptsCfg(source=source, input_len=input_len, count=count)


def _warmup(obj: Mapping[str, Any]) -> WarmupCfg:
    p = "experiment.warmup"
    w = WarmupCfg(
        mode=_enum(_get(obj, "mode", p, str, "fixed"), ("fixed", "cv"), f"{p}.mode"),
        iterations=_get(obj, "iterations", p, int, 3),
        cv_threshold=_positive(_get(obj, "cv_threshold", p, float, 0.05), f"{p}.cv_threshold"),
        window=_get(obj, "window", p, int, 3),
        max_iterations=_get(obj, "max_iterations", p, int, 30),
    )
    if w.iterations < 0:
        raise ConfigError(f"{p}.iterations: must be >= 0")
    if w.window < 2:
        raise ConfigError(f"{p}.window: must be >= 2")
    if w.max_iterations <= 0:
        raise ConfigError(f"{p}.max_iterations: must be > 0")
    return w


def _pytorch(obj: Mapping[str, Any]) -> PytorchCfg:
    p = "experiment.pytorch"
    device_map = obj.get("device_map")
    if device_map is not None and not isinstance(device_map, (str, dict)):
        raise ConfigError(f"{p}.device_map: expected a string or an object")
    max_memory = _get(obj, "max_memory", p, dict, None)
    attn = _get(obj, "attn_implementation", p, str, None)
    if attn is not None:
        _enum(attn, ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"), f"{p}.attn_implementation")
    return PytorchCfg(
        device_map=device_map,
        max_memory=max_memory,
        attn_implementation=attn,
        torch_compile=_get(obj, "torch_compile", p, bool, False),
        static_kv_cache=_get(obj, "static_kv_cache", p, bool, False),
    )


def _positive_int(obj: Mapping[str, Any], key: str, p: str, default: Optional[int]) -> Optional[int]:
    v = _get(obj, key, p, int, default)
    if v is not None and v <= 0:
        raise ConfigError(f"{p}.{key}: must be > 0, got {v}")
    return v


def _fraction(obj: Mapping[str, Any], key: str, p: str, default: Optional[float]) -> Optional[float]:
    v = _get(obj, key, p, float, default)
    if v is not None and not 0 < v <= 1:
        raise ConfigError(f"{p}.{key}: must be within (0, 1], got {v}")
    return v


def _vllm(obj: Mapping[str, Any]) -> VllmCfg:
    p = "experiment.vllm"
    tp = _positive_int(obj, "tensor_parallel_size", p, 1)
    util = _fraction(obj, "gpu_memory_utilization", p, 0.9)
    assert tp is not None and util is not None
    prefix = obj.get("enable_prefix_caching")
    if prefix is not None and not isinstance(prefix, bool):
        raise ConfigError(f"{p}.enable_prefix_caching: expected true/false, got {prefix!r}")
    return VllmCfg(
        tensor_parallel_size=tp,
        gpu_memory_utilization=util,
        max_num_seqs=_positive_int(obj, "max_num_seqs", p, None),
        max_model_len=_positive_int(obj, "max_model_len", p, None),
        enforce_eager=_get(obj, "enforce_eager", p, bool, False),
        enable_prefix_caching=prefix,
    )


def _tensorrt(obj: Mapping[str, Any]) -> TensorrtCfg:
    p = "experiment.tensorrt"
    tp = _positive_int(obj, "tp_size", p, 1)
    assert tp is not None
    return TensorrtCfg(
        tp_size=tp,
        max_batch_size=_positive_int(obj, "max_batch_size", p, None),
        max_num_tokens=_positive_int(obj, "max_num_tokens", p, None),
        kv_cache_free_gpu_memory_fraction=_fraction(obj, "kv_cache_free_gpu_memory_fraction", p, None),
        engine_dir=_get(obj, "engine_dir", p, str, None),
    )


def parse_config(doc: Any) -> WorkerConfig:
    if not isinstance(doc, dict):
        raise ConfigError("CONFIG.json: top level must be an object with 'run' and 'experiment'")
    run_obj = _get(doc, "run", "(root)", dict)
    exp = _get(doc, "experiment", "(root)", dict)
    run = RunInfo(
        run_id=_get(run_obj, "run_id", "run", str),
        experiment_id=_get(run_obj, "experiment_id", "run", str),
        cycle=_get(run_obj, "cycle", "run", int),
        attempt=_get(run_obj, "attempt", "run", int),
    )
    if run.cycle <= 0 or run.attempt <= 0:
        raise ConfigError("run.cycle and run.attempt must be positive integers")
    backend = _enum(_get(exp, "backend", "experiment", str), BACKENDS, "experiment.backend")
    measurement = _measurement(_get(exp, "measurement", "experiment", dict, {}))
    extra = _get(exp, "extra", "experiment", dict, {})
    name = _get(exp, "name", "experiment", str, None)
    if backend == "calibration":
        calibration = _calibration(_get(exp, "calibration", "experiment", dict, {}))
        return WorkerConfig(run, Experiment(backend, name, measurement, extra, exp, calibration=calibration))
    model_obj = _get(exp, "model", "experiment", dict)
    model = ModelCfg(
        id=_get(model_obj, "id", "experiment.model", str),
        revision=_get(model_obj, "revision", "experiment.model", str, None),
        no_weights=_get(model_obj, "no_weights", "experiment.model", bool, False),
        architecture=_get(model_obj, "architecture", "experiment.model", str, None),
        trust_remote_code=_get(model_obj, "trust_remote_code", "experiment.model", bool, False),
    )
    precision = _enum(_get(exp, "precision", "experiment", str, "bf16"), ("fp32", "fp16", "bf16", "fp8"), "experiment.precision")
    q_obj = _get(exp, "quantization", "experiment", dict, {})
    quant = _enum(
        _get(q_obj, "method", "experiment.quantization", str, "none"),
        ("none", "bnb_8bit", "bnb_4bit", "awq", "gptq", "fp8"),
        "experiment.quantization.method",
    )
    b_obj = _get(exp, "batching", "experiment", dict, {})
    batching = BatchingCfg(
        strategy=_enum(_get(b_obj, "strategy", "experiment.batching", str, "static"), ("static", "dynamic", "sorted"), "experiment.batching.strategy"),
        batch_size=_get(b_obj, "batch_size", "experiment.batching", int, 1),
        max_tokens_per_batch=_get(b_obj, "max_tokens_per_batch", "experiment.batching", int, None),
    )
    if batching.batch_size <= 0:
        raise ConfigError("experiment.batching.batch_size: must be > 0")
    if batching.strategy == "dynamic" and (batching.max_tokens_per_batch is None or batching.max_tokens_per_batch <= 0):
        raise ConfigError("experiment.batching.max_tokens_per_batch: the dynamic strategy needs a positive token budget")
    max_in = _get(exp, "max_input_tokens", "experiment", int, 512)
    max_out = _get(exp, "max_output_tokens", "experiment", int, 128)
    if max_in <= 0 or max_out <= 0:
        raise ConfigError("experiment.max_input_tokens / max_output_tokens: must be > 0")
    if backend == "pytorch" and (precision == "fp8" or quant == "fp8"):
        raise ConfigError("experiment.precision: fp8 is not supported by the pytorch (transformers) backend; use vllm or tensorrt")
    if backend != "pytorch" and quant in ("bnb_8bit", "bnb_4bit"):
        raise ConfigError(f"experiment.quantization.method: {quant} (bitsandbytes) is only available on the pytorch backend")
    if backend != "pytorch" and batching.strategy != "static":
        raise ConfigError(f"experiment.batching.strategy: {backend} schedules batches itself (continuous batching); "
                          "batching.strategy must be static")
    return WorkerConfig(
        run,
        Experiment(
            backend,
            name,
            measurement,
            extra,
            exp,
            model=model,
            precision=precision,
            quantization=quant,
            batching=batching,
            decoder=_decoder(_get(exp, "decoder", "experiment", dict, {})),
            max_input_tokens=max_in,
            max_output_tokens=max_out,
            prompts=_prompts(_get(exp, "prompts", "experiment", dict, {})),
            warmup=_warmup(_get(exp, "warmup", "experiment", dict, {})),
            pytorch=_pytorch(_get(exp, "pytorch", "experiment", dict, {})),
            vllm=_vllm(_get(exp, "vllm", "experiment", dict, {})),
            tensorrt=_tensorrt(_get(exp, "tensorrt", "experiment", dict, {})),
        ),
    )


def load_config(path: str) -> WorkerConfig:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"CONFIG file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"CONFIG file {path} is not readable JSON: {exc}") from None
    return parse_config(doc)
