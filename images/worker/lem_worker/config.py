"""CONFIG.json loading: the contract check, then dataclasses.

The orchestrator sends the *resolved* experiment config (src/config/experiment.ts, defaults
filled in). The worker checks it against the generated experiment schema (jsoncontract.py:
unknown fields, types and ranges, each error naming the field's path) and the backend registry's
refusals (schemas/backends.json), then builds the dataclasses below. A field a hand-written config
leaves out takes the dataclass default, which is the zod default (the cross-language agreement
test, test/contract/agreement.test.ts, checks that both sides load every shipped config alike).
`python3 -m lem_worker.config CONFIG.json…` prints what the worker loaded, as JSON.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from lem_worker import jsoncontract
from lem_worker.errors import ConfigError

DECODER_PRESETS: dict[str, dict[str, Any]] = {
    "deterministic": {"do_sample": False, "temperature": 0.0, "top_p": 1.0, "top_k": 0},
    "standard": {"do_sample": True, "temperature": 1.0, "top_p": 0.95, "top_k": 50},
    "creative": {"do_sample": True, "temperature": 1.3, "top_p": 0.98, "top_k": 100},
    "factual": {"do_sample": True, "temperature": 0.3, "top_p": 0.9, "top_k": 20},
}


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
    gpus: Optional[int] = None  # GPUs the run asks for (a GPU set of this size; docker runtime placement)
    timeout_s: Optional[float] = None
    #: How long to wait for another measurement to release this run's devices (see devicelock.py).
    device_lock_timeout_s: float = 3600.0
    #: The workload repeats until min_window_s is filled, at most this many times.
    max_repetitions: int = 1000
    #: Measure a prefill-only pass to split energy into prefill and decode.
    prefill_split: bool = True
    #: Seconds the meter probes NVML's counter update period (None: the meter's default).
    nvml_probe_s: Optional[float] = None


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
    #: Seeds prompt sampling, synthetic prompts and random-initialised (no_weights) models.
    seed: int = 0
    #: Wrap prompts in the tokenizer's chat template when it has one.
    chat_template: bool = True


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
    #: 'module:function' that loads the model instead of transformers (a test/advanced hook).
    loader: Optional[str] = None


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


def _build(cls: Any, obj: Mapping[str, Any], path: str, strict: bool = True) -> Any:
    """A dataclass from a schema-checked mapping; absent keys take the dataclass default. strict: a key the
    dataclass has no field for is contract drift (a config error). Backend sections are not strict: their
    other typed fields are read from exp.raw by engine_args.py and serving/settings.py."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in obj if k not in names)
    if unknown and strict:
        raise ConfigError("; ".join(f"{path}.{k}: unknown field (this worker does not know it)" for k in unknown))
    return cls(**{k: v for k, v in obj.items() if k in names})


def _floats(obj: Mapping[str, Any], cls: Any) -> dict[str, Any]:
    """JSON integers given where the dataclass holds a float become floats (1 → 1.0)."""
    out = dict(obj)
    for f in dataclasses.fields(cls):
        v = out.get(f.name)
        if f.type in ("float", "Optional[float]") and isinstance(v, int) and not isinstance(v, bool):
            out[f.name] = float(v)
    return out


def _registry_rules(exp: Mapping[str, Any]) -> None:
    """The backend registry's refused values (e.g. fp8 on pytorch), with its reasons."""
    spec = jsoncontract.backends()[exp["backend"]]
    values = {
        "precision": exp.get("precision", "bf16"),
        "quantization.method": (exp.get("quantization") or {}).get("method", "none"),
        "batching.strategy": (exp.get("batching") or {}).get("strategy", "static"),
    }
    for rule in spec["invalid"]:
        if values.get(rule["field"]) in rule["values"]:
            raise ConfigError(f"experiment.{rule['field']}: {rule['why']}")


def _decoder(obj: Mapping[str, Any]) -> DecoderCfg:
    preset = obj.get("preset", "deterministic")
    d: DecoderCfg = _build(DecoderCfg, _floats({**DECODER_PRESETS[preset], **obj}, DecoderCfg), "experiment.decoder")
    if preset == "deterministic" and (d.do_sample or d.temperature > 0):
        raise ConfigError("experiment.decoder: the deterministic preset is greedy: do not combine it with do_sample or a temperature above 0")
    return d


def _prompts(obj: Mapping[str, Any]) -> PromptsCfg:
    source = obj.get("source", "builtin")
    defaults: dict[str, Any] = {"count": None} if source == "file" else {}
    if source == "huggingface":
        defaults["column"] = "text"
    return _build(PromptsCfg, {**defaults, **obj}, "experiment.prompts")


def parse_config(doc: Any) -> WorkerConfig:
    if not isinstance(doc, dict):
        raise ConfigError("CONFIG.json: top level must be an object with 'run' and 'experiment'")
    run_obj, exp = doc.get("run"), doc.get("experiment")
    if not isinstance(run_obj, dict) or not isinstance(exp, dict):
        raise ConfigError("CONFIG.json: 'run' and 'experiment' must both be objects")
    for k in ("run_id", "experiment_id"):
        if not isinstance(run_obj.get(k), str) or not run_obj[k]:
            raise ConfigError(f"run.{k}: required non-empty string")
    for k in ("cycle", "attempt"):
        v = run_obj.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"run.{k}: must be a positive integer, got {v!r}")
    run = RunInfo(run_obj["run_id"], run_obj["experiment_id"], run_obj["cycle"], run_obj["attempt"])
    jsoncontract.check(exp, "experiment.schema.json", "experiment")
    moved = jsoncontract.load_schema("backends.json")["moved_extra_knobs"]
    for k in exp.get("extra", {}):
        if k in moved:
            raise ConfigError(f"experiment.extra.{k}: moved: write it as experiment.{moved[k]} (a typed field)")
    _registry_rules(exp)
    backend = exp["backend"]
    measurement = _build(MeasurementCfg, _floats(exp.get("measurement", {}), MeasurementCfg), "experiment.measurement")
    extra = dict(exp.get("extra", {}))
    name = exp.get("name")
    if jsoncontract.backends()[backend]["kind"] != "llm":
        calibration = _build(CalibrationCfg, _floats(exp.get("calibration", {}), CalibrationCfg), "experiment.calibration")
        return WorkerConfig(run, Experiment(backend, name, measurement, extra, exp, calibration=calibration))
    batching = _build(BatchingCfg, exp.get("batching", {}), "experiment.batching")
    if batching.strategy == "dynamic" and batching.max_tokens_per_batch is None:
        raise ConfigError("experiment.batching.max_tokens_per_batch: the dynamic strategy needs a token budget")
    return WorkerConfig(
        run,
        Experiment(
            backend,
            name,
            measurement,
            extra,
            exp,
            model=_build(ModelCfg, exp["model"], "experiment.model"),
            precision=exp.get("precision", "bf16"),
            quantization=(exp.get("quantization") or {}).get("method", "none"),
            batching=batching,
            decoder=_decoder(exp.get("decoder", {})),
            max_input_tokens=exp.get("max_input_tokens", 512),
            max_output_tokens=exp.get("max_output_tokens", 128),
            prompts=_prompts(exp.get("prompts", {})),
            warmup=_build(WarmupCfg, _floats(exp.get("warmup", {}), WarmupCfg), "experiment.warmup"),
            pytorch=_build(PytorchCfg, exp.get("pytorch", {}), "experiment.pytorch", strict=False),
            vllm=_build(VllmCfg, _floats(exp.get("vllm", {}), VllmCfg), "experiment.vllm", strict=False),
            tensorrt=_build(TensorrtCfg, _floats(exp.get("tensorrt", {}), TensorrtCfg), "experiment.tensorrt", strict=False),
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


def dump(cfg: WorkerConfig) -> dict[str, Any]:
    """What the worker loaded, as plain JSON (the raw experiment left out)."""
    out: dict[str, Any] = dataclasses.asdict(cfg)
    out["experiment"].pop("raw", None)
    return out


def known_fields() -> dict[str, list[str]]:
    """The experiment fields this loader knows, by section (`--fields`): the contract drift test checks
    every field of the generated experiment schema against it. Backend sections read partly from exp.raw
    (pytorch, vllm, tensorrt) and own-module sections (traffic, reasoning) are not listed by field."""
    strict = {"measurement": MeasurementCfg, "calibration": CalibrationCfg, "model": ModelCfg, "batching": BatchingCfg,
              "decoder": DecoderCfg, "prompts": PromptsCfg, "warmup": WarmupCfg}
    out = {"experiment": [f.name for f in dataclasses.fields(Experiment) if f.name != "raw"], "experiment.quantization": ["method"]}
    out.update({f"experiment.{k}": [f.name for f in dataclasses.fields(c)] for k, c in strict.items()})
    return out


if __name__ == "__main__":  # python3 -m lem_worker.config CONFIG.json… → one JSON list of the loaded configs (--fields: known_fields())
    if sys.argv[1:] == ["--fields"]:
        print(json.dumps(known_fields()))
        sys.exit(0)
    try:
        print(json.dumps([dump(load_config(p)) for p in sys.argv[1:]]))
    except ConfigError as exc:
        sys.stderr.write(f"lem-worker: bad config: {exc}\n")
        sys.exit(exc.exit_code)
