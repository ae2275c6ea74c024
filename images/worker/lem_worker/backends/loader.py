"""Loading a causal LM with transformers (AutoModelForCausalLM / AutoTokenizer).

Supports revision, trust_remote_code, dtype, device_map/max_memory, bitsandbytes 8/4-bit (when
installed; a clear error otherwise), attn_implementation, torch.compile and a static KV cache.
model.no_weights builds a random-initialised model from an architecture config (shipped JSON in
lem_worker/data/architectures, or the model's own config.json) and generation then ignores EOS
so output lengths are fixed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from lem_worker.config import Experiment
from lem_worker.engine_args import pytorch_generate_extra, section
from lem_worker.errors import ConfigError, WorkerError
from lem_worker.log import log

ARCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "architectures")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    torch: Any
    eos_ids: list[int]
    pad_id: int
    ignore_eos: bool
    vocab_size: Optional[int]
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    generate_extra: dict[str, Any] = field(default_factory=dict)
    sync: Callable[[], None] = lambda: None


def shipped_architectures() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(ARCH_DIR) if f.endswith(".json"))


def architecture_config(name: str) -> dict[str, Any]:
    path = os.path.join(ARCH_DIR, f"{name}.json")
    if not os.path.isfile(path):
        raise ConfigError(f"experiment.model.architecture: no shipped architecture {name!r} "
                          f"(have: {', '.join(shipped_architectures())})")
    with open(path, "r", encoding="utf-8") as fh:
        cfg = json.load(fh)
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def write_architecture_dir(name: str, prefix: str) -> tuple[dict[str, Any], str]:
    """The shipped architecture config `name` as <new temp dir>/config.json, for engines that load
    a model directory (vLLM, TensorRT-LLM with random weights). The caller removes the directory."""
    arch = architecture_config(name)
    tmpdir = tempfile.mkdtemp(prefix=prefix)
    with open(os.path.join(tmpdir, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(arch, fh)
    return arch, tmpdir


def tokenizer_or_stand_in(model_id: str, revision: Optional[str], trust_remote_code: bool,
                          notes: list[str]) -> tuple[Any, bool]:
    """The model's own tokenizer through transformers when it loads; otherwise the byte-level
    stand-in, noted. Returns (tokenizer, is_stand_in)."""
    try:
        import transformers

        kw: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if revision:
            kw["revision"] = revision
        return transformers.AutoTokenizer.from_pretrained(model_id, **kw), False
    except Exception as exc:  # noqa: BLE001
        notes.append(f"tokenizer of {model_id} unavailable ({type(exc).__name__}); using a byte-level stand-in "
                     "tokenizer and skip_tokenizer_init=True")
        return ByteTokenizer(), True


def _has_module(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class ByteTokenizer:
    """Fallback for no_weights runs when the model's tokenizer cannot be fetched: UTF-8 bytes + 3."""

    pad_token_id = 0
    bos_token_id = 1
    eos_token_id = 2
    chat_template = None
    vocab_size = 259

    def __call__(self, text: str, truncation: bool = False, max_length: Optional[int] = None,
                 add_special_tokens: bool = True, **_: Any) -> dict[str, list[int]]:
        ids = ([self.bos_token_id] if add_special_tokens else []) + [b + 3 for b in text.encode("utf-8")]
        if truncation and max_length is not None:
            ids = ids[:max_length]
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", "replace")


def _eos_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def dtype_kwarg(version: Optional[str]) -> str:
    """transformers >= 4.56 takes `dtype=` (`torch_dtype=` is deprecated, and gone in 5.x); older ones `torch_dtype=`."""
    try:
        major, minor = (int(x) for x in str(version).split(".")[:2])
    except ValueError:
        return "dtype"
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def apply_lora(model: Any, exp: Experiment, notes: list[str]) -> Any:
    """pytorch.lora: PEFT adapters loaded onto the model, merged into the weights where `merge` says so."""
    adapters = section(exp, "pytorch").get("lora") or []
    if not adapters:
        return model
    try:
        from peft import PeftModel
    except ImportError:
        raise WorkerError("pytorch.lora needs the peft package, which is not installed in this image") from None
    for i, a in enumerate(adapters):
        kw = {"revision": a["revision"]} if a.get("revision") else {}
        model = PeftModel.from_pretrained(model, a["id"], adapter_name=f"lora{i}", **kw)
        if a.get("merge"):
            model = model.merge_and_unload()
        notes.append(f"LoRA adapter {a['id']}" + (" merged into the weights" if a.get("merge") else " applied unmerged"))
    return model


def load_transformers(exp: Experiment) -> LoadedModel:
    assert exp.model is not None
    try:
        import torch
    except ImportError:
        raise WorkerError("the pytorch backend needs torch, which is not installed in this interpreter") from None
    try:
        import transformers
    except ImportError:
        raise WorkerError("the pytorch backend needs the transformers package, which is not installed in this interpreter") from None
    m = exp.model
    py = exp.pytorch
    notes: list[str] = []
    if exp.precision not in DTYPES:
        raise ConfigError(f"experiment.precision: {exp.precision} is not supported by the pytorch backend")
    dtype = getattr(torch, DTYPES[exp.precision])
    cuda = bool(torch.cuda.is_available())
    common: dict[str, Any] = {"trust_remote_code": m.trust_remote_code}
    if m.revision:
        common["revision"] = m.revision
    dtype_key = dtype_kwarg(getattr(transformers, "__version__", None))
    model_kwargs: dict[str, Any] = {dtype_key: dtype}
    if py.attn_implementation:
        model_kwargs["attn_implementation"] = py.attn_implementation
    q = exp.quantization
    if q in ("bnb_8bit", "bnb_4bit"):
        if not _has_module("bitsandbytes"):
            raise WorkerError(f"quantization.method {q} needs the bitsandbytes package, which is not installed in this image")
        if not cuda:
            raise WorkerError(f"quantization.method {q} (bitsandbytes) needs a CUDA GPU")
        if q == "bnb_8bit":
            model_kwargs["quantization_config"] = transformers.BitsAndBytesConfig(load_in_8bit=True)
        else:
            model_kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4")
    elif q in ("awq", "gptq"):
        notes.append(f"quantization.method {q}: the checkpoint must already be {q}-quantized; transformers reads its quantization_config")

    device = "cuda" if cuda else "cpu"
    if isinstance(py.device_map, str) and py.device_map not in ("auto", "balanced", "balanced_low_0", "sequential"):
        device = py.device_map
    if not cuda:
        notes.append("no CUDA device: running on CPU")
    if m.no_weights:
        if m.architecture:
            arch = architecture_config(m.architecture)
            source = f"shipped architecture {m.architecture}"
        else:
            try:
                arch = transformers.AutoConfig.from_pretrained(m.id, **common).to_dict()
            except Exception as exc:  # noqa: BLE001
                raise ConfigError(f"experiment.model: no_weights without model.architecture needs {m.id}'s config.json: {exc}") from None
            source = f"{m.id} config.json"
        model_type = arch.pop("model_type")
        for k in ("architectures", "torch_dtype", "transformers_version"):
            arch.pop(k, None)
        config = transformers.AutoConfig.for_model(model_type, **arch)
        if isinstance(py.device_map, dict) or py.max_memory:
            raise ConfigError("experiment.pytorch.device_map (as a map) / max_memory need real weights; "
                              "no_weights builds the model on one device")
        torch.manual_seed(exp.prompts.seed)
        from_config_kwargs = {dtype_key: dtype, "trust_remote_code": m.trust_remote_code}
        if py.attn_implementation:
            from_config_kwargs["attn_implementation"] = py.attn_implementation
        log(f"building random-initialised {model_type} from {source} on {device}")
        if device != "cpu" and hasattr(torch, "get_default_device"):  # torch >= 2.3: initialise on the GPU
            # ignore: torch 1.13's stubs (Debian's mypy run) lack device.__enter__/__exit__, added in 2.0
            with torch.device(device):  # type: ignore[attr-defined]
                model = transformers.AutoModelForCausalLM.from_config(config, **from_config_kwargs)
        else:
            model = transformers.AutoModelForCausalLM.from_config(config, **from_config_kwargs)
        model = model.to(device)
        notes.append(f"model.no_weights: random-initialised {model_type} from {source}; EOS ignored (fixed output length)")
    else:
        if py.device_map is not None:
            model_kwargs["device_map"] = py.device_map
        elif cuda:
            model_kwargs["device_map"] = "cuda"
        if py.max_memory:
            model_kwargs["max_memory"] = py.max_memory
        log(f"loading {m.id}" + (f"@{m.revision}" if m.revision else ""))
        model = transformers.AutoModelForCausalLM.from_pretrained(m.id, **common, **model_kwargs)
        if "device_map" not in model_kwargs:
            model = model.to(device)
    model = apply_lora(model, exp, notes)
    model.eval()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(m.id, **common)
    except Exception as exc:  # noqa: BLE001
        if not m.no_weights:
            raise WorkerError(f"cannot load the tokenizer of {m.id}: {exc}") from None
        tokenizer = ByteTokenizer()
        notes.append(f"tokenizer of {m.id} unavailable ({type(exc).__name__}); using a byte-level stand-in tokenizer")
    if getattr(tokenizer, "padding_side", None) is not None:
        tokenizer.padding_side = "left"
    gen_extra: dict[str, Any] = pytorch_generate_extra(exp)
    assistant = section(exp, "pytorch").get("assistant_model")
    if assistant:
        log(f"loading the assistant (draft) model {assistant}")
        gen_extra["assistant_model"] = transformers.AutoModelForCausalLM.from_pretrained(
            assistant, **{dtype_key: dtype}, trust_remote_code=m.trust_remote_code).to(device)
        notes.append(f"assisted decoding with draft model {assistant}")
    if py.static_kv_cache:
        gen_extra["cache_implementation"] = "static"
        notes.append("static KV cache (cache_implementation='static')")
    if py.torch_compile:
        mode = "reduce-overhead" if py.static_kv_cache else None
        # ignore: torch.compile is new in torch 2.0, so torch 1.13's stubs (Debian's mypy run) lack it
        model.forward = torch.compile(model.forward, mode=mode)  # type: ignore[attr-defined]
        notes.append(f"torch.compile(model.forward, mode={mode!r}); compilation happens during warm-up")
    mc = getattr(model, "config", None)
    eos = _eos_list(getattr(tokenizer, "eos_token_id", None)) or _eos_list(getattr(mc, "eos_token_id", None))
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = eos[0] if eos else 0
        try:
            tokenizer.pad_token_id = pad
        except Exception:  # noqa: BLE001
            pass
    vocab = getattr(mc, "vocab_size", None)

    n_cuda = torch.cuda.device_count() if cuda else 0

    def sync() -> None:
        for i in range(n_cuda):  # every visible device: device_map may spread the model
            torch.cuda.synchronize(i)

    info = {
        "model_id": m.id,
        "revision": m.revision,
        "no_weights": m.no_weights,
        "architecture": m.architecture,
        "dtype": DTYPES[exp.precision],
        "device": device,
        "parameters": int(sum(p.numel() for p in model.parameters())) if hasattr(model, "parameters") else None,
        "quantization": q,
        "attn_implementation": py.attn_implementation,
        "transformers_version": getattr(transformers, "__version__", None),
    }
    return LoadedModel(model, tokenizer, device, torch, eos, int(pad), m.no_weights, vocab, info, notes, gen_extra, sync)
