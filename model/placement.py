"""Where the model runs: the device map over several GPUs, and the attention kernel.

Pure functions over a config and a few facts about the machine, so they are tested
without a GPU. The device map names the modules of transformers'
InternVLForConditionalGeneration:

    model.vision_tower                  InternViT
    model.multi_modal_projector         the MLP from vision features to text embeddings
    model.language_model.embed_tokens   }
    model.language_model.layers.N       } the Qwen2 decoder
    model.language_model.norm           }
    model.language_model.rotary_emb     }
    lm_head

The split follows InternVL's reference `split_model`: the vision tower, the projector,
the embeddings, the final norm, the head and the LAST decoder layer stay on GPU 0, so
an image's features and the logits never cross a device; the other decoder layers are
spread over all the GPUs, GPU 0 taking half a share because the vision tower and the
activations of every tile already weigh on it. Unlike the reference, which rounds up
and can leave the last GPU short or empty, each GPU gets its share rounded to the
nearest whole layers (largest remainder), and the blocks are contiguous, so hidden
states travel GPU 0 -> 1 -> ... -> n-1 -> 0 once per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.errors import ModelUnavailable

__all__ = ["ON_FIRST_GPU", "build_device_map", "choose_attention", "choose_device_map", "layer_counts"]

# Modules that stay on GPU 0 whatever the split (the last decoder layer joins them).
ON_FIRST_GPU = (
    "model.vision_tower",
    "model.multi_modal_projector",
    "model.language_model.embed_tokens",
    "model.language_model.norm",
    "model.language_model.rotary_emb",
    "lm_head",
)
_LAYER = "model.language_model.layers.{}"


def layer_counts(num_layers: int, num_gpus: int) -> list[int]:
    """Decoder layers per GPU: GPU 0 holds the last layer plus half a share of the others."""
    if num_gpus < 1:
        raise ValueError(f"num_gpus must be at least 1, not {num_gpus}")
    if num_layers < 1:
        raise ValueError(f"a decoder needs at least one layer, not {num_layers}")
    spread = num_layers - 1
    # In half shares, so the arithmetic stays exact: GPU 0 has 1 half, the others 2 each.
    halves = [1] + [2] * (num_gpus - 1)
    total = sum(halves)
    counts = [spread * h // total for h in halves]
    remainders = [spread * h % total for h in halves]
    # Largest remainder first; on a tie, the later GPU (GPU 0 already carries the vision tower).
    order = sorted(range(num_gpus), key=lambda i: (remainders[i], i), reverse=True)
    for i in order[: spread - sum(counts)]:
        counts[i] += 1
    counts[0] += 1  # the last layer
    return counts


def build_device_map(config: Any, num_gpus: int) -> dict[str, int]:
    """A transformers device map (module name -> GPU index) for an InternVLConfig over `num_gpus`."""
    num_layers = int(config.text_config.num_hidden_layers)
    counts = layer_counts(num_layers, num_gpus)
    device_map = dict.fromkeys(ON_FIRST_GPU, 0)
    layer = 0
    for gpu, count in enumerate(counts):
        for _ in range(count - (gpu == 0)):  # GPU 0's count includes the last layer
            device_map[_LAYER.format(layer)] = gpu
            layer += 1
    device_map[_LAYER.format(num_layers - 1)] = 0
    return device_map


def choose_device_map(
    config: Any,
    *,
    device_map: str | Mapping[str, Any] | None,
    num_gpus: int | None,
    cuda_count: int,
) -> dict[str, Any] | None:
    """The device map to load with over several GPUs, or None to load onto one device.

    `device_map="auto"` spreads the model over every GPU when there are more than one;
    `num_gpus=k` spreads it over the first k (k=1 is one GPU); a dict is the caller's own
    map and is used as given.
    """
    if device_map is not None and num_gpus is not None:
        raise ValueError("pass device_map or num_gpus, not both")
    if isinstance(device_map, Mapping):
        return dict(device_map)
    if device_map is not None and device_map != "auto":
        raise ValueError(
            f"device_map must be 'auto' or a dict of module name -> device, not {device_map!r}; "
            "for one device, pass device='cuda:0' (or 'cpu')"
        )
    if num_gpus is not None:
        if num_gpus < 1:
            raise ValueError(f"num_gpus must be at least 1, not {num_gpus}")
        if num_gpus > cuda_count:
            fix = f"pass num_gpus={cuda_count} or fewer" if cuda_count else "leave it out to run on the CPU"
            raise ModelUnavailable(f"num_gpus={num_gpus}, but this machine has {cuda_count} GPU(s): {fix}")
        wanted = num_gpus
    else:
        wanted = cuda_count if device_map == "auto" else 1
    return build_device_map(config, wanted) if wanted > 1 else None


def choose_attention(device_type: str, dtype_name: str, *, flash_attn_installed: bool) -> str:
    """FlashAttention-2 on CUDA in half precision when `flash_attn` is installed, else SDPA."""
    half = dtype_name in ("bfloat16", "float16")
    return "flash_attention_2" if flash_attn_installed and device_type == "cuda" and half else "sdpa"
