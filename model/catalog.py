"""Model names -> checkpoint directories on this machine, and what each model costs.

`resolve_model` accepts what a user types after `--model`: "tiny", a short name such
as "internvl3-2b", a hub id such as "OpenGVLab/InternVL3-2B-hf", or a folder. It only
ever looks at the local disk (the Hugging Face cache included); it never downloads.

The architecture of every catalog model is known offline (`model.architectures` holds
the table), so `parameter_count`, `memory_gib` and `describe_models` answer for a model
that is not on this machine, and `instantiate_random` builds one with random weights for
a benchmark. These take a short name, a catalog hub id, or "tiny".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from model import architectures
from tools.errors import ModelUnavailable

if TYPE_CHECKING:
    import torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration

__all__ = [
    "CHECKPOINTS",
    "PRECISIONS",
    "TINY",
    "ModelInfo",
    "architecture_config",
    "describe_models",
    "hub_id",
    "instantiate_random",
    "memory_gib",
    "parameter_count",
    "resolve_model",
]

TINY = "tiny"

# The native transformers ("-hf") checkpoints of InternVL3, by short name.
CHECKPOINTS: dict[str, str] = {
    f"internvl3-{size.lower()}": f"OpenGVLab/InternVL3-{size}-hf"
    for size in ("1B", "2B", "8B", "9B", "14B", "38B", "78B")
}

# owner/name as the hub spells it; anything else is taken for a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRY = "pass --model PATH to a downloaded checkpoint, or use --model tiny"


def hub_id(name: str) -> str | None:
    """The hub id for a short name or a hub id (case-insensitive for short names), else None."""
    if name.lower() in CHECKPOINTS:
        return CHECKPOINTS[name.lower()]
    return name if _HUB_ID.match(name) else None


def resolve_model(name_or_path: str) -> Path:
    """The local checkpoint directory for `name_or_path`, or ModelUnavailable saying what to pass."""
    if name_or_path == TINY:
        from model.tiny import tiny_checkpoint

        return tiny_checkpoint()

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailable(
                f"{path} is not a transformers checkpoint (it has no config.json): pass the folder "
                "that holds config.json and the *.safetensors weights, or use --model tiny"
            )
        return path
    if path.exists():
        raise ModelUnavailable(f"{path} is a file, not a checkpoint folder: {_TRY}")

    repo = hub_id(name_or_path)
    if repo is None:
        if "/" in name_or_path or name_or_path.startswith((".", "~")):
            raise ModelUnavailable(f"there is no checkpoint folder {path} on this machine: {_TRY}")
        names = ", ".join(CHECKPOINTS)
        raise ModelUnavailable(
            f"model {name_or_path!r} is not a folder here, a known name ({names}) or a hub id: {_TRY}"
        )
    cached = _cached_snapshot(repo)
    if cached is None:
        raise ModelUnavailable(f"model {repo} is not on this machine and the hub cannot be reached: {_TRY}")
    return cached


def _cached_snapshot(repo: str) -> Path | None:
    """The snapshot folder of `repo` in the local Hugging Face cache, if it holds a config."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # transformers depends on it, so this is a broken install
        return None
    try:
        folder = Path(snapshot_download(repo, local_files_only=True))
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError), or not a valid hub id
        return None
    return folder if (folder / "config.json").is_file() else None


# --- What each model costs --------------------------------------------------------------

Precision = Literal["bf16", "8bit", "4bit"]
PRECISIONS: tuple[Precision, ...] = ("bf16", "8bit", "4bit")

# Bytes per weight of a quantized Linear matrix. 8bit: bitsandbytes LLM.int8, one byte a
# weight (its per-row fp32 scales add under 0.1% and are left out). 4bit: NF4, half a byte a
# weight plus one fp32 absmax per block of 64 weights, without double quantization.
_QUANTIZED_BYTES: dict[str, float] = {"bf16": 2.0, "8bit": 1.0, "4bit": 0.5 + 4 / 64}
_GIB = 2**30


@dataclass(frozen=True)
class ModelInfo:
    """One row of `internvl-agent models`: a model, its size, and its weights' memory in GiB."""

    name: str
    hub_id: str | None
    params: int
    gib_bf16: float
    gib_8bit: float
    gib_4bit: float


def _catalog_name(name: str) -> str:
    """The short name for a short name, a catalog hub id or "tiny"; ModelUnavailable otherwise."""
    if name == TINY or name.lower() in CHECKPOINTS:
        return name.lower()
    for short, repo in CHECKPOINTS.items():
        if name.lower() == repo.lower():
            return short
    names = ", ".join((*CHECKPOINTS, TINY))
    raise ModelUnavailable(f"no architecture is known for {name!r}: use one of {names}")


def architecture_config(name: str) -> InternVLConfig:
    """The transformers config of `name` (a catalog model or "tiny"), with no download."""
    short = _catalog_name(name)
    if short == TINY:
        from transformers import InternVLConfig

        return InternVLConfig.from_pretrained(resolve_model(TINY))
    return architectures.architecture_config(short)


def instantiate_random(
    name: str,
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype | None = None,
    seed: int = 0,
    attn_implementation: str = "sdpa",
) -> InternVLForConditionalGeneration:
    """`name` as an InternVLForConditionalGeneration with random weights (see `model.architectures`).

    "meta" (the default) costs no memory; "cpu" or "cuda" allocate the weights for real:
    `memory_gib(name, "bf16")` says how much (twice that in float32).
    """
    config = architecture_config(name)
    return architectures.instantiate_random(
        config, device=device, dtype=dtype, seed=seed, attn_implementation=attn_implementation
    )


@cache
def _counts(short: str) -> tuple[int, int]:
    """(all parameters, the weights of quantized Linear layers), counted on the meta device.

    Quantized: the Linears that `model.loading` hands to bitsandbytes, i.e. not under one of
    its `NOT_QUANTIZED` prefixes (vision tower, projector, lm_head), nor the output layer.
    """
    from torch import nn

    from model.loading import NOT_QUANTIZED

    model = instantiate_random(short, device="meta")
    total = sum(p.numel() for p in model.parameters())  # a tied weight counts once
    output = model.get_output_embeddings()
    quantizable = sum(
        module.weight.numel()
        for path, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and module is not output
        and not any(path == kept or path.startswith(kept + ".") for kept in NOT_QUANTIZED)
    )
    return total, quantizable


def parameter_count(name: str) -> int:
    """The exact number of parameters of `name`, counted once per name and cached."""
    return _counts(_catalog_name(name))[0]


def memory_gib(name: str, precision: Precision) -> float:
    """GiB that the weights of `name` take at `precision` ("bf16", "8bit" or "4bit").

    Weights only: the KV cache, activations and the CUDA context come on top. The quantized
    rows follow what `model.loading` has bitsandbytes quantize: the language model's Linear
    matrices at the bytes above, while the vision tower and projector (kept out, as
    `model.loading.NOT_QUANTIZED` says), embeddings, lm_head, norms and biases stay in bf16.
    """
    if precision not in _QUANTIZED_BYTES:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    total, quantizable = _counts(_catalog_name(name))
    size = quantizable * _QUANTIZED_BYTES[precision] + (total - quantizable) * 2.0
    return size / _GIB


def describe_models() -> list[ModelInfo]:
    """A row for every catalog model, smallest first (no download; a few seconds the first time)."""
    return [
        ModelInfo(
            name=short,
            hub_id=repo,
            params=parameter_count(short),
            gib_bf16=memory_gib(short, "bf16"),
            gib_8bit=memory_gib(short, "8bit"),
            gib_4bit=memory_gib(short, "4bit"),
        )
        for short, repo in CHECKPOINTS.items()
    ]
