"""The model catalog: names, hub ids, architectures, parameter counts and memory, all offline."""

from __future__ import annotations

import subprocess
import sys

import pytest

from model import architectures
from model.catalog import (
    CHECKPOINTS,
    PRECISIONS,
    TINY,
    ModelInfo,
    architecture_config,
    describe_models,
    hub_id,
    instantiate_random,
    memory_gib,
    parameter_count,
    resolve_model,
)
from tools.errors import ModelUnavailable

SIZES = ("1B", "2B", "8B", "9B", "14B", "38B", "78B")

# The "Model size" the hub shows for each OpenGVLab/InternVL3-*(-hf) checkpoint, read from its
# safetensors metadata and rounded to three significant figures. An exact count must round to
# it, so the tolerance is half a unit in the last printed digit. The table in
# model/architectures.py was written from the parts' configs, independently of these totals.
PUBLISHED = {
    "internvl3-1b": (938e6, 0.5e6),
    "internvl3-2b": (2.09e9, 5e6),
    "internvl3-8b": (7.94e9, 5e6),
    "internvl3-9b": (9.14e9, 5e6),
    "internvl3-14b": (15.1e9, 50e6),
    "internvl3-38b": (38.4e9, 50e6),
    "internvl3-78b": (78.4e9, 50e6),
}


@pytest.mark.parametrize("size", SIZES)
def test_every_short_name_maps_to_its_hf_checkpoint(size):
    assert hub_id(f"internvl3-{size.lower()}") == f"OpenGVLab/InternVL3-{size}-hf"
    assert hub_id(f"InternVL3-{size}") == f"OpenGVLab/InternVL3-{size}-hf"


def test_every_catalog_model_has_an_architecture_and_nothing_else_does():
    assert set(architectures.ARCHITECTURES) == set(CHECKPOINTS)
    assert len(CHECKPOINTS) == len(SIZES)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_parameter_counts_match_the_published_sizes(name):
    published, tolerance = PUBLISHED[name]
    assert abs(parameter_count(name) - published) <= tolerance


def test_a_catalog_hub_id_is_accepted_wherever_a_short_name_is():
    assert parameter_count("OpenGVLab/InternVL3-2B-hf") == parameter_count("internvl3-2b")
    assert parameter_count("InternVL3-2B") == parameter_count("internvl3-2b")
    assert architecture_config("OpenGVLab/InternVL3-8B-hf").text_config.hidden_size == 3584


def test_the_vision_tower_is_internvit_300m_up_to_14b_and_6b_above():
    for name in ("internvl3-1b", "internvl3-2b", "internvl3-8b", "internvl3-9b", "internvl3-14b"):
        vision = architecture_config(name).vision_config
        assert (vision.hidden_size, vision.num_hidden_layers, vision.norm_type) == (1024, 24, "layer_norm")
        assert not vision.use_qk_norm
    for name in ("internvl3-38b", "internvl3-78b"):
        vision = architecture_config(name).vision_config
        assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (3200, 45, 25)
        assert vision.norm_type == "rms_norm"
        assert vision.use_qk_norm


def test_the_9b_language_model_is_internlm3_built_as_llama():
    text = architecture_config("internvl3-9b").text_config
    assert text.model_type == "llama"
    assert (text.hidden_size, text.num_hidden_layers, text.num_key_value_heads) == (4096, 48, 2)
    assert not text.attention_bias and not text.mlp_bias


def test_the_1b_on_the_meta_device_has_the_real_layers_and_an_untied_head():
    model = instantiate_random("internvl3-1b", device="meta")
    assert len(model.model.language_model.layers) == 24
    assert len(model.model.vision_tower.encoder.layer) == 24
    assert all(p.device.type == "meta" for p in model.parameters())
    assert model.lm_head.weight is not model.get_input_embeddings().weight
    # pixel shuffle 0.5 -> 4 * 1024 features per image token, projected to the LLM's 896
    assert model.model.multi_modal_projector.linear_1.weight.shape == (896, 4096)


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_memory_rows_follow_the_stated_bytes_per_weight(name):
    params = parameter_count(name)
    bf16, int8, int4 = (memory_gib(name, precision) for precision in PRECISIONS)
    assert bf16 == pytest.approx(params * 2 / 2**30)
    # Quantized rows: Linear weights at 1 or 0.5625 bytes, everything else in bf16 (2 bytes).
    assert params * 1 / 2**30 < int8 < bf16
    assert params * 0.5625 / 2**30 < int4 < int8
    # Exactly: count the Linear matrices of the language model alone: model.loading keeps the
    # vision tower, the projector and lm_head in bf16.
    from torch import nn

    model = instantiate_random(name, device="meta")
    linear = sum(
        module.weight.numel()
        for path, module in model.named_modules()
        if isinstance(module, nn.Linear) and path.startswith("model.language_model.")
    )
    vision = sum(
        module.weight.numel()
        for path, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and path.startswith(("model.vision_tower.", "model.multi_modal_projector."))
    )
    assert vision > 0 and linear > 0
    assert int8 == pytest.approx((linear * 1 + (params - linear) * 2) / 2**30)
    assert int4 == pytest.approx((linear * (0.5 + 4 / 64) + (params - linear) * 2) / 2**30)


def test_an_unknown_precision_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="bf16, 8bit, 4bit"):
        memory_gib("internvl3-1b", "fp8")  # type: ignore[arg-type]


def test_describe_models_lists_every_catalog_model_in_order():
    rows = describe_models()
    assert [row.name for row in rows] == list(CHECKPOINTS)
    assert all(isinstance(row, ModelInfo) for row in rows)
    assert [row.hub_id for row in rows] == list(CHECKPOINTS.values())
    assert [row.params for row in rows] == sorted(row.params for row in rows)
    eight = rows[2]
    assert eight.gib_bf16 == memory_gib("internvl3-8b", "bf16")
    with pytest.raises(AttributeError):
        eight.params = 0  # type: ignore[misc]


@pytest.mark.parametrize("name", ["internvl3-4b", "gpt-4", "OpenGVLab/InternVL2_5-8B", ""])
def test_an_unknown_name_says_which_names_are_known(name):
    with pytest.raises(ModelUnavailable, match=r"internvl3-1b, .*internvl3-78b, tiny"):
        parameter_count(name)
    with pytest.raises(ModelUnavailable, match="use one of"):
        architecture_config(name)


def test_the_architecture_table_refuses_unknown_names_too():
    with pytest.raises(ModelUnavailable, match="internvl3-8b"):
        architectures.architecture_config("internvl3-4b")


def test_the_tiny_checkpoint_has_no_hub_id_but_a_config_and_a_count():
    assert hub_id(TINY) is None
    assert (resolve_model(TINY) / "config.json").is_file()
    config = architecture_config(TINY)
    assert tuple(config.vision_config.image_size) == (448, 448)
    assert 0 < parameter_count(TINY) < 10_000_000
    assert TINY not in [row.name for row in describe_models()]


def test_random_weights_are_seeded_finite_and_shaped_like_a_trained_model():
    import torch

    first = instantiate_random(TINY, device="cpu", seed=3)
    again = instantiate_random(TINY, device="cpu", seed=3)
    other = instantiate_random(TINY, device="cpu", seed=4)
    assert first.dtype == torch.float32
    for (name, a), b, c in zip(first.named_parameters(), again.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b), name
        assert torch.isfinite(a).all(), name
        if a.dim() >= 2:
            assert not torch.equal(a, c), name
    norm = first.model.language_model.norm.weight
    assert torch.equal(norm, torch.ones_like(norm))
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        logits = first(input_ids=ids).logits
    assert logits.shape == (1, 3, first.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()


def test_the_architecture_table_imports_nothing_heavy():
    # bench/gpu_step.py runs on bare GPU machines with torch and transformers only.
    code = (
        "import sys, model.architectures\n"
        "print(','.join(m for m in ('torch', 'transformers', 'pydantic', 'tools') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
