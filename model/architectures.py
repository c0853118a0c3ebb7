"""The architectures of the InternVL3 "-hf" checkpoints, as transformers configs.

This lets us reason about a model that is not on this machine: count its parameters,
size its memory, or build it with random weights for a speed benchmark, all without a
download. Values are those of the published `OpenGVLab/InternVL3-*-hf` config.json files
(vision tower, projector and language model), written down from the model cards and the
public configs of their parts (InternViT-*-V2_5, Qwen2.5-*, InternLM3-8B). Nothing here
is read from the hub.

Every InternVL3 model is the same three parts:

- a vision tower, InternViT, over 448x448 tiles in 14x14 patches (1024 patches + a CLS token);
- a projector: pixel shuffle 0.5 (32x32 patches -> 16x16 = 256 tokens of 4x the width), then
  LayerNorm(4*vit) -> Linear(4*vit, llm) -> GELU -> Linear(llm, llm);
- a decoder-only language model.

This module imports only the standard library at module level (torch and transformers load
inside the functions), so `bench/gpu_step.py` can use it on a bare GPU machine.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "LanguageModel",
    "VisionTower",
    "architecture_config",
    "instantiate_random",
]


@dataclass(frozen=True)
class VisionTower:
    """An InternViT vision tower (transformers' InternVLVisionConfig)."""

    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    norm: str  # "layer_norm" or "rms_norm"
    qk_norm: bool
    qkv_bias: bool


@dataclass(frozen=True)
class LanguageModel:
    """A decoder-only language model (transformers' Qwen2Config or LlamaConfig)."""

    name: str
    model_type: str  # "qwen2" or "llama"
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    rms_norm_eps: float
    rope: dict[str, Any]
    bos_token_id: int
    eos_token_id: int


@dataclass(frozen=True)
class Architecture:
    vision: VisionTower
    llm: LanguageModel
    image_token_id: int  # <IMG_CONTEXT>


# InternViT, from the InternViT-300M-448px-V2_5 and InternViT-6B-448px-V2_5 configs.
#   tower                      hidden layers heads  ffn    norm        qk_norm qkv_bias
#   InternViT-300M-448px-V2_5   1024   24     16    4096   layer_norm  no      yes
#   InternViT-6B-448px-V2_5     3200   45     25   12800   rms_norm    yes     no
# The 6B tower of InternVL2.5/3 keeps 45 of InternViT-6B's 48 layers.
VIT_300M = VisionTower("InternViT-300M-448px-V2_5", 1024, 24, 16, 4096, "layer_norm", False, True)
VIT_6B = VisionTower("InternViT-6B-448px-V2_5", 3200, 45, 25, 12800, "rms_norm", True, False)

# The language models. Qwen2.5's q/k/v projections always carry a bias (transformers' Qwen2
# has no switch for it); InternLM3 has no bias anywhere. InternVL3 unties lm_head from the
# embeddings at every size (the 0.5B and 1.5B Qwen2.5 bases tie them; InternVL3-1B/2B do
# not, which is what makes them 0.94B and 2.09B), and trims Qwen2.5's padded vocabulary of
# 151,936 to the tokenizer's 151,674 (151,665 Qwen2.5 tokens + 9 InternVL tokens).
#   model     base             hidden layers heads kv  ffn    vocab   rms eps  rope theta
#   1B        Qwen2.5-0.5B       896   24     14   2   4864   151674  1e-6     1e6
#   2B        Qwen2.5-1.5B      1536   28     12   2   8960   151674  1e-6     1e6
#   8B        Qwen2.5-7B        3584   28     28   4  18944   151674  1e-6     1e6
#   9B        InternLM3-8B      4096   48     32   2  10240   128512  1e-5     5e7, dynamic x6
#   14B       Qwen2.5-14B       5120   48     40   8  13824   151674  1e-5 (?) 1e6
#   38B       Qwen2.5-32B       5120   64     40   8  27648   151674  1e-5 (?) 1e6
#   78B       Qwen2.5-72B       8192   80     64   8  29568   151674  1e-6 (?) 1e6
# (?) marks values written from memory and not checked against the file; none of them
# changes a shape, a parameter count or the speed of a step.
# The 9B (?): we believe transformers' InternVL conversion script maps InternVL3-9B's
# InternLM3 to model_type "llama", and it makes no difference to the shapes: InternLM3 *is*
# Llama with head_dim 128 and no biases (recent transformers even register an "internlm3"
# model_type that builds LlamaModel; older 5.x releases do not, so we use "llama", which all
# have). Its vocabulary is InternLM3's 128,512 (?) and its bos/eos ids are InternLM3's; its
# <IMG_CONTEXT> id is a placeholder (?): we do not know where the -hf tokenizer put it.
# Check: the exact counts these give (tests/unit/test_catalog.py) are the hub's model-card
# sizes of InternVL3-1B..78B: 0.938B, 2.09B, 7.94B, 9.14B, 15.1B, 38.4B, 78.4B.
_QWEN_ROPE: dict[str, Any] = {"rope_type": "default", "rope_theta": 1_000_000.0}
_QWEN_IDS = {"bos_token_id": 151643, "eos_token_id": 151645}  # <|endoftext|>, <|im_end|>
_QWEN_VOCAB = 151674
_QWEN_IMAGE_TOKEN = 151667  # <IMG_CONTEXT>: <img>=151665, </img>=151666, <IMG_CONTEXT>=151667


def _qwen(
    vit: VisionTower, base: str, hidden: int, layers: int, heads: int, kv: int, ffn: int, eps: float
) -> Architecture:
    llm = LanguageModel(
        base, "qwen2", hidden, layers, heads, kv, ffn, _QWEN_VOCAB, eps, _QWEN_ROPE, **_QWEN_IDS
    )
    return Architecture(vit, llm, _QWEN_IMAGE_TOKEN)


_INTERNLM3_8B = LanguageModel(
    "InternLM3-8B", "llama", 4096, 48, 32, 2, 10240, 128512, 1e-5,
    {"rope_type": "dynamic", "factor": 6.0, "rope_theta": 50_000_000.0},
    bos_token_id=1, eos_token_id=2,
)  # fmt: skip

ARCHITECTURES: dict[str, Architecture] = {
    "internvl3-1b": _qwen(VIT_300M, "Qwen2.5-0.5B", 896, 24, 14, 2, 4864, 1e-6),
    "internvl3-2b": _qwen(VIT_300M, "Qwen2.5-1.5B", 1536, 28, 12, 2, 8960, 1e-6),
    "internvl3-8b": _qwen(VIT_300M, "Qwen2.5-7B", 3584, 28, 28, 4, 18944, 1e-6),
    "internvl3-9b": Architecture(VIT_300M, _INTERNLM3_8B, image_token_id=128511),  # placeholder id (?)
    "internvl3-14b": _qwen(VIT_300M, "Qwen2.5-14B", 5120, 48, 40, 8, 13824, 1e-5),
    "internvl3-38b": _qwen(VIT_6B, "Qwen2.5-32B", 5120, 64, 40, 8, 27648, 1e-5),
    "internvl3-78b": _qwen(VIT_6B, "Qwen2.5-72B", 8192, 80, 64, 8, 29568, 1e-6),
}


def _architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name.lower()]
    except KeyError:
        # Imported here so that this module stays importable without pydantic (see the docstring).
        from tools.errors import ModelUnavailable

        names = ", ".join(ARCHITECTURES)
        raise ModelUnavailable(f"no architecture is known for {name!r}: use one of {names}") from None


def architecture_config(name: str) -> InternVLConfig:
    """The transformers config of InternVL3 model `name` ("internvl3-8b"), built offline."""
    from transformers import InternVLConfig

    arch = _architecture(name)
    vit, llm = arch.vision, arch.llm
    vision = {
        "hidden_size": vit.hidden,
        "num_hidden_layers": vit.layers,
        "num_attention_heads": vit.heads,
        "intermediate_size": vit.intermediate,
        "norm_type": vit.norm,
        "use_qk_norm": vit.qk_norm,
        "attention_bias": vit.qkv_bias,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-6,
        "layer_scale_init_value": 0.1,
        "image_size": 448,
        "patch_size": 14,
    }
    text: dict[str, Any] = {
        "model_type": llm.model_type,
        "vocab_size": llm.vocab,
        "hidden_size": llm.hidden,
        "intermediate_size": llm.intermediate,
        "num_hidden_layers": llm.layers,
        "num_attention_heads": llm.heads,
        "num_key_value_heads": llm.kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "rms_norm_eps": llm.rms_norm_eps,
        "rope_parameters": dict(llm.rope),
        "tie_word_embeddings": False,
        "bos_token_id": llm.bos_token_id,
        "eos_token_id": llm.eos_token_id,
        "pad_token_id": llm.bos_token_id if llm.model_type == "qwen2" else llm.eos_token_id,
    }
    if llm.model_type == "llama":
        text |= {"head_dim": llm.hidden // llm.heads, "attention_bias": False, "mlp_bias": False}
    config = InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=arch.image_token_id,
        image_seq_length=256,
        downsample_ratio=0.5,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,  # InternVLConfig defaults to True; the -hf models are untied
    )
    config.architectures = ["InternVLForConditionalGeneration"]
    return config


def instantiate_random(
    name_or_config: str | InternVLConfig,
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype | None = None,
    seed: int = 0,
    attn_implementation: str = "sdpa",
) -> InternVLForConditionalGeneration:
    """InternVL3 model `name_or_config` with random weights, built on `device` without a download.

    On "meta" the tensors have shapes and no storage (for counting). Elsewhere the weights are
    allocated uninitialized, skipping transformers' and torch's default init (minutes for
    billions of parameters on a CPU), and then filled in place: matrices and embeddings
    N(0, 0.02) from a generator seeded with `seed`, norm weights 1, InternViT's layer scales
    0.1, biases 0. The model speaks nonsense but every shape and kernel is the real one.
    `dtype` defaults to bfloat16 on CUDA and float32 elsewhere.
    """
    import torch
    from transformers import InternVLForConditionalGeneration

    try:  # transformers >= 5 keeps it here; older releases kept it in modeling_utils
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - depends on the installed transformers
        from transformers.modeling_utils import no_init_weights

    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(name_or_config, str):
        config = architecture_config(name_or_config)
    else:  # _from_config writes the dtype into the config: leave the caller's alone
        config = copy.deepcopy(name_or_config)
    with torch.device(device), no_init_weights():
        model = InternVLForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation=attn_implementation
        )
    if device.type != "meta":
        _fill_random(model, seed=seed)
    return model.eval()


def _fill_random(model: torch.nn.Module, *, seed: int) -> None:
    import torch

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:  # weights, embeddings, the CLS token and position embeddings
                param.normal_(0.0, 0.02, generator=generator)
            elif "norm" in name and name.endswith("weight"):
                param.fill_(1.0)
            elif "lambda" in name:  # InternViT's layer scale
                param.fill_(0.1)
            else:  # biases
                param.zero_()
