"""Loading an InternVL3 -hf checkpoint: device, dtype, attention, GPUs and quantization.

Every failure a user can fix (a missing package, no GPU, too little memory, a broken
folder) becomes one ModelUnavailable that says what to do. torch and transformers are
imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

from model.placement import choose_attention, choose_device_map
from tools.errors import ModelUnavailable

__all__ = [
    "NOT_QUANTIZED", "QUANTIZATIONS", "Quantization", "check_architecture", "load", "quantization_config",
]

Quantization = Literal["8bit", "4bit"]
QUANTIZATIONS: tuple[str, ...] = ("8bit", "4bit")
# Quantize the decoder only: the vision tower and projector are small and sensitive, and
# transformers keeps the head in full precision by default (naming our own skips drops that default).
NOT_QUANTIZED: tuple[str, ...] = ("model.vision_tower", "model.multi_modal_projector", "lm_head")
INSTALL_HINT = "pip install 'internvl-agent' (torch and transformers>=5)"


def check_quantization(quantization: str | None) -> None:
    """Refuse, before anything loads, a quantization this machine cannot run."""
    if quantization is None:
        return
    if quantization not in QUANTIZATIONS:
        options = ", ".join(QUANTIZATIONS)
        raise ValueError(f"quantization must be one of {options} or None, not {quantization!r}")
    missing = [name for name in ("bitsandbytes", "accelerate") if find_spec(name) is None]
    if missing:
        raise ModelUnavailable(
            f"{quantization} loading needs the {' and '.join(missing)} package(s) and a CUDA GPU: "
            f"pip install {' '.join(missing)}, or load without quantization"
        )


def quantization_config(quantization: Quantization, compute_dtype: Any) -> Any:
    """transformers' BitsAndBytesConfig for 8-bit (LLM.int8) or 4-bit (NF4) decoder weights."""
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(NOT_QUANTIZED))
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=list(NOT_QUANTIZED),
    )


def load(
    path: Path,
    *,
    device: str | None,
    dtype: Any,
    device_map: str | Mapping[str, Any] | None,
    num_gpus: int | None,
    quantization: Quantization | None,
    attn_implementation: str | None,
) -> tuple[Any, Any]:
    """The InternVLForConditionalGeneration (in eval mode) and the tokenizer in `path`."""
    try:
        import torch
        from safetensors import SafetensorError
        from transformers import AutoConfig, AutoTokenizer, InternVLForConditionalGeneration
    except ImportError as exc:
        raise ModelUnavailable(f"the local InternVL backend needs {exc.name}: {INSTALL_HINT}") from exc

    if device is not None and (device_map is not None or num_gpus is not None):
        raise ValueError("pass device for one device, or device_map/num_gpus for several, not both")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(f"cannot read the config in {path}: {_one_line(exc)}") from exc
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    split = choose_device_map(config, device_map=device_map, num_gpus=num_gpus, cuda_count=cuda_count)
    if quantization is not None and not cuda_count:
        raise ModelUnavailable(
            f"{quantization} loading runs on a CUDA GPU and this machine has none: load without quantization"
        )
    if split is not None and find_spec("accelerate") is None:
        raise ModelUnavailable("spreading a model over several GPUs needs accelerate: pip install accelerate")
    if device is not None:
        _check_device(torch, device, cuda_count)
    if split is not None:
        device = "cuda:0" if cuda_count else "cpu"  # where the inputs go; the map places the rest
    elif quantization is not None:
        device = device or "cuda:0"  # the whole quantized model goes on the device asked for
        if torch.device(device).type != "cuda":
            raise ModelUnavailable(f"{quantization} loading runs on a CUDA GPU, not on {device!r}")
    device = device or ("cuda" if cuda_count else "cpu")
    dtype = _dtype(torch, dtype, device)
    attention = attn_implementation or choose_attention(
        torch.device(device).type,
        str(dtype).removeprefix("torch."),
        flash_attn_installed=find_spec("flash_attn") is not None,
    )
    kwargs: dict[str, Any] = {"config": config, "dtype": dtype, "attn_implementation": attention}
    if quantization is not None:
        kwargs["quantization_config"] = quantization_config(quantization, dtype)
    if split is not None:
        kwargs["device_map"] = split
    elif find_spec("accelerate") is not None:
        # With accelerate, weights load straight onto the device; without it, via host memory.
        kwargs["device_map"] = device
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = InternVLForConditionalGeneration.from_pretrained(path, **kwargs)
        if split is None and quantization is None:  # a dispatched or quantized model stays put
            model = model.to(device)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(
            f"could not load the model in {path}: {_one_line(exc)}. Check that the folder holds "
            "a complete InternVL3 -hf checkpoint, or use --model tiny"
        ) from exc
    except ImportError as exc:  # an optional kernel (flash_attn, bitsandbytes) that fails to import
        raise ModelUnavailable(f"could not load the model in {path}: {_one_line(exc)}") from exc
    except torch.OutOfMemoryError as exc:  # before RuntimeError, which it is
        where = f"{len(set(split.values()))} GPUs" if split else device
        raise ModelUnavailable(
            f"{path.name} does not fit in the memory of {where}: use quantization='4bit', "
            "more GPUs (device_map='auto'), or a smaller model"
        ) from exc
    except (SafetensorError, RuntimeError) as exc:  # a truncated file, or weights of another shape
        raise ModelUnavailable(
            f"the weights in {path} are damaged or do not fit its config.json: {_one_line(exc)}. "
            "Download the checkpoint again"
        ) from exc
    model.eval()
    return model, tokenizer


def _check_device(torch: Any, device: str, cuda_count: int) -> None:
    """Refuse a device that torch cannot parse, or a GPU this machine does not have."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ModelUnavailable(
            f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N' ({_one_line(exc)})"
        ) from exc
    if parsed.type == "cuda" and not cuda_count:
        raise ModelUnavailable(f"device {device!r} is a CUDA GPU and this machine has none: use device='cpu'")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= cuda_count:
        raise ModelUnavailable(
            f"device {device!r} does not exist: this machine has {cuda_count} GPU(s), "
            f"cuda:0 to cuda:{cuda_count - 1}"
        )


def _dtype(torch: Any, dtype: Any, device: str) -> Any:
    if dtype is None:
        # bf16 is what the checkpoints ship in and what GPUs run fast; CPUs want fp32.
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}: use bfloat16, float16 or float32")
        return getattr(torch, dtype)
    return dtype


def check_architecture(path: Path) -> None:
    """Refuse, with a way out, the original remote-code checkpoints before transformers chokes."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot read {path / 'config.json'}: {_one_line(exc)}") from exc
    model_type = config.get("model_type")
    if model_type != "internvl":
        raise ModelUnavailable(
            f"{path} holds a {model_type!r} model, not an InternVL3 -hf checkpoint (model_type 'internvl'). "
            "Use an OpenGVLab/InternVL3-*-hf checkpoint here, or serve the original one with LMDeploy "
            "or vLLM and use the remote backend"
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
