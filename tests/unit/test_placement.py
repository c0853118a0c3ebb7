"""Multi-GPU device maps and the attention choice, checked on meta-device models: no GPU needed."""

from __future__ import annotations

from fractions import Fraction

import pytest

from model.placement import ON_FIRST_GPU, build_device_map, choose_attention, choose_device_map, layer_counts
from tools.errors import ModelUnavailable

LAST = "model.language_model.layers.27"


@pytest.fixture(scope="module")
def internvl3_8b_config():
    """InternVL3-8B-hf's architecture: InternViT-300M and a 28-layer Qwen2.5-7B, untied head."""
    from transformers import InternVLConfig

    return InternVLConfig(
        vision_config={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 448,
            "patch_size": 14,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": 151674,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "tie_word_embeddings": False,
        },
        image_token_id=151667,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )


@pytest.fixture(scope="module")
def internvl3_8b(internvl3_8b_config):
    """The real transformers model, on the meta device: names and shapes, no memory."""
    import torch
    from transformers import InternVLForConditionalGeneration

    with torch.device("meta"):
        return InternVLForConditionalGeneration(internvl3_8b_config)


def _owner(name: str, device_map: dict[str, int]) -> list[str]:
    """The keys of `device_map` that hold `name`: itself, or a module above it."""
    return [key for key in device_map if name == key or name.startswith(key + ".")]


# -- the map covers the real model ------------------------------------------------------------


@pytest.mark.parametrize("num_gpus", [1, 2, 4])
def test_every_parameter_and_buffer_of_internvl3_8b_lands_on_exactly_one_gpu(internvl3_8b, num_gpus):
    from transformers.integrations.accelerate import expand_device_map

    device_map = build_device_map(internvl3_8b.config, num_gpus)
    names = [n for n, _ in internvl3_8b.named_parameters()] + [n for n, _ in internvl3_8b.named_buffers()]
    assert "lm_head.weight" in names  # untied, as in the real 8B checkpoint
    assert len(names) > 600
    for name in names:
        assert len(_owner(name, device_map)) == 1, name
    # transformers reads the map the same way (it silently sends what no key matches to the CPU).
    expanded = expand_device_map(device_map, names)
    assert expanded == {name: device_map[_owner(name, device_map)[0]] for name in names}
    assert set(expanded.values()) == set(range(num_gpus))


@pytest.mark.parametrize("num_gpus", [1, 2, 4])
def test_every_key_names_a_real_module(internvl3_8b, num_gpus):
    modules = dict(internvl3_8b.named_modules())
    device_map = build_device_map(internvl3_8b.config, num_gpus)
    assert set(device_map) <= set(modules)
    layers = [k for k in device_map if k.startswith("model.language_model.layers.")]
    assert len(layers) == 28


# -- the share rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_gpus", [1, 2, 4])
def test_gpu0_keeps_vision_projector_embeddings_norm_head_and_last_layer(internvl3_8b_config, num_gpus):
    device_map = build_device_map(internvl3_8b_config, num_gpus)
    for key in (*ON_FIRST_GPU, LAST):
        assert device_map[key] == 0, key


@pytest.mark.parametrize(
    ("num_gpus", "per_gpu"),
    [(1, [28]), (2, [1 + 9, 18]), (4, [1 + 4, 7, 8, 8])],  # 27 layers over 0.5 + 1 + 1 + 1 shares
)
def test_internvl3_8b_layers_per_gpu(internvl3_8b_config, num_gpus, per_gpu):
    device_map = build_device_map(internvl3_8b_config, num_gpus)
    layers = [device_map[f"model.language_model.layers.{i}"] for i in range(28)]
    assert [layers.count(gpu) for gpu in range(num_gpus)] == per_gpu
    # Contiguous blocks in GPU order, then the last layer back on GPU 0: one hop per GPU.
    assert layers[:-1] == sorted(layers[:-1]) and layers[-1] == 0


@pytest.mark.parametrize("num_layers", [1, 2, 3, 7, 24, 28, 36, 48, 64, 80])
@pytest.mark.parametrize("num_gpus", [1, 2, 3, 4, 8])
def test_gpu0_takes_half_a_share_of_the_other_layers(num_layers, num_gpus):
    counts = layer_counts(num_layers, num_gpus)
    assert sum(counts) == num_layers and len(counts) == num_gpus
    shares = [Fraction(1, 2)] + [Fraction(1)] * (num_gpus - 1)
    spread = [counts[0] - 1, *counts[1:]]  # without the last layer, which GPU 0 always holds
    for count, share in zip(spread, shares, strict=True):
        assert abs(count - (num_layers - 1) * share / sum(shares)) < 1


def test_too_few_gpus_or_layers_is_a_value_error():
    with pytest.raises(ValueError, match="num_gpus"):
        layer_counts(28, 0)
    with pytest.raises(ValueError, match="layer"):
        layer_counts(0, 2)


# -- which map from_pretrained uses -----------------------------------------------------------


def test_auto_spreads_over_every_gpu_only_when_there_are_several(internvl3_8b_config):
    def auto(cuda_count: int):
        return choose_device_map(internvl3_8b_config, device_map="auto", num_gpus=None, cuda_count=cuda_count)

    assert auto(0) is None and auto(1) is None
    assert auto(4) == build_device_map(internvl3_8b_config, 4)
    assert choose_device_map(internvl3_8b_config, device_map=None, num_gpus=None, cuda_count=4) is None


def test_num_gpus_picks_the_first_k_gpus(internvl3_8b_config):
    def first(k: int, cuda_count: int = 4):
        return choose_device_map(internvl3_8b_config, device_map=None, num_gpus=k, cuda_count=cuda_count)

    assert first(1) is None
    assert set(first(2).values()) == {0, 1}
    with pytest.raises(ModelUnavailable, match=r"has 4 GPU\(s\): pass num_gpus=4 or fewer"):
        first(5)
    with pytest.raises(ModelUnavailable, match="leave it out to run on the CPU"):
        first(2, cuda_count=0)
    with pytest.raises(ValueError, match="at least 1"):
        first(0)


def test_a_dict_is_the_callers_own_map_and_bad_values_are_refused(internvl3_8b_config):
    own = {"": 1}
    assert choose_device_map(internvl3_8b_config, device_map=own, num_gpus=None, cuda_count=2) == own
    with pytest.raises(ValueError, match="not both"):
        choose_device_map(internvl3_8b_config, device_map="auto", num_gpus=2, cuda_count=2)
    with pytest.raises(ValueError, match="pass device="):
        choose_device_map(internvl3_8b_config, device_map="balanced", num_gpus=None, cuda_count=2)


# -- attention ----------------------------------------------------------------------------------


def test_flash_attention_only_on_cuda_in_half_precision_when_installed():
    assert choose_attention("cuda", "bfloat16", flash_attn_installed=True) == "flash_attention_2"
    assert choose_attention("cuda", "float16", flash_attn_installed=True) == "flash_attention_2"
    assert choose_attention("cuda", "float32", flash_attn_installed=True) == "sdpa"
    assert choose_attention("cpu", "bfloat16", flash_attn_installed=True) == "sdpa"
    assert choose_attention("cuda", "bfloat16", flash_attn_installed=False) == "sdpa"
