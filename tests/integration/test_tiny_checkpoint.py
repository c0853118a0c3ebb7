"""The tiny random-weight checkpoint that tests build offline (model/tiny.py): cached, built
once and deterministically, safe against an aborted or a racing build."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from model import tiny
from model.catalog import resolve_model

pytestmark = pytest.mark.model


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_checkpoint_is_cached_and_not_rebuilt(cache, checkpoint, monkeypatch):
    assert checkpoint == cache / tiny.TINY_NAME

    def no_rebuild(out: Path) -> None:
        raise AssertionError("the cached checkpoint was rebuilt")

    monkeypatch.setattr(tiny, "_build", no_rebuild)
    assert tiny.tiny_checkpoint() == checkpoint
    assert resolve_model("tiny") == checkpoint


def test_tiny_checkpoint_is_deterministic(tmp_path, checkpoint):
    assert _digest(tiny.tiny_checkpoint(tmp_path)) == _digest(checkpoint)


def test_an_aborted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def failing(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny, "_build", failing)
    with pytest.raises(KeyboardInterrupt):
        tiny.tiny_checkpoint(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_build_that_loses_the_race_uses_the_winner(tmp_path, checkpoint, monkeypatch):
    final = tmp_path / tiny.TINY_NAME

    def racing(out: Path) -> None:
        shutil.copytree(checkpoint, final)  # another process finishes first
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(tiny, "_build", racing)
    assert tiny.tiny_checkpoint(tmp_path) == final
    assert [p.name for p in tmp_path.iterdir()] == [tiny.TINY_NAME]
    assert _digest(final) == _digest(checkpoint)


def test_the_tiny_tokenizer_carries_internvl_tokens(checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert tokenizer.start_image_token == "<img>" and tokenizer.end_image_token == "</img>"
    assert tokenizer.context_image_token == "<IMG_CONTEXT>" and tokenizer.video_token == "<video>"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert 2000 <= len(tokenizer) <= 8192
    for token in tiny.SPECIAL_TOKENS:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1


def test_the_cache_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("INTERNVL_AGENT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tiny.cache_root() == tmp_path / "xdg" / "internvl-agent"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tiny.cache_root() == tmp_path / "home" / ".cache" / "internvl-agent"
    monkeypatch.setenv("INTERNVL_AGENT_CACHE", str(tmp_path / "mine"))
    assert tiny.cache_root() == tmp_path / "mine"
