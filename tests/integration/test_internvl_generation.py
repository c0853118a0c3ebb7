"""Generation on the tiny checkpoint: message formats, streaming, image labels and budget,
batches, sampled candidates, and what a completion reports."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import internvl, tiny
from model.base import Completion, GenerationConfig, Message
from model.generation import TextPieces
from model.internvl import InternVLModel
from model.messages import to_openai
from model.prompting import OMITTED_IMAGE

pytestmark = pytest.mark.model

GREEDY = GenerationConfig(max_new_tokens=8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tiny checkpoint in a private cache, so the user's real cache is left alone."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERNVL_AGENT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield tiny.tiny_checkpoint()


@pytest.fixture(scope="module")
def vlm(checkpoint: Path) -> InternVLModel:
    """The tiny model with its decoder weights scaled up 25x.

    At the checkpoint's init scale (std 0.02) the greedy reply is the same few tokens
    whatever the prompt, so "batched == single" would hold even if a batch mixed up its
    rows or images. Scaled up, the reply depends on every token and every image.
    """
    import torch

    loaded = InternVLModel.from_pretrained("tiny")
    with torch.no_grad():
        for name, weight in loaded.hf_model.named_parameters():
            if weight.dim() >= 2 and not name.startswith("model.vision_tower"):
                weight.mul_(25.0)
    return loaded


def _screenshot(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _span(vlm: InternVLModel, tiles: int) -> str:
    return "<img>" + "<IMG_CONTEXT>" * (vlm.tokens_per_tile * tiles) + "</img>"


def _ids(vlm: InternVLModel, text: str) -> list[int]:
    """The tokenizer's own ids for a prompt written out with its special tokens."""
    return vlm.tokenizer(text, add_special_tokens=False)["input_ids"]


CONVERSATIONS = [
    [Message.user("hello")],
    [Message.system("Act."), Message.user(_screenshot(448, 448, 1), "Where is the OK button?")],
    [Message.user("Click the blue Submit button on the login form, then wait for the page to load.")],
    [Message.user(_screenshot(896, 448, 2), _screenshot(224, 224, 3), "Which is newer?")],
    [Message.system("Act."), Message.user(_screenshot(448, 448, 4), "Where is the OK button?")],
]


# -- one message format -----------------------------------------------------------------------


def test_openai_format_messages_give_the_same_completion_as_ours(vlm):
    ours = CONVERSATIONS[1]
    theirs = to_openai(ours)  # the image travels as a PNG data URL: lossless
    assert isinstance(theirs[1]["content"][0]["image_url"]["url"], str)
    first, second = vlm.generate(ours, GREEDY), vlm.generate(theirs, GREEDY)
    assert (first.text, first.prompt_tokens, first.image_tokens) == (
        second.text,
        second.prompt_tokens,
        second.image_tokens,
    )
    assert vlm.build_inputs(theirs)[0] == vlm.build_inputs(ours)[0]


# -- streaming ---------------------------------------------------------------------------------


def test_the_concatenated_stream_is_the_greedy_text(vlm):
    for conversation in CONVERSATIONS[:2]:
        config = GenerationConfig(max_new_tokens=10)
        pieces = list(vlm.stream(conversation, config))
        assert len(pieces) > 1 and all(pieces)
        assert "".join(pieces) == vlm.generate(conversation, config).text


def test_text_pieces_decode_a_short_window_not_the_whole_reply(vlm):
    text = "Click «Submit» — then wait 3s for the 🚀 page; ünïcödé and 日本語 too. " * 20
    ids = vlm.tokenizer(text, add_special_tokens=False)["input_ids"]
    decoded: list[int] = []

    def decode(window: list[int]) -> str:
        decoded.append(len(window))
        return vlm.tokenizer.decode(window)

    pieces = TextPieces(decode)
    out = [pieces.push(token) for token in ids] + [pieces.finish()]
    assert "".join(out) == vlm.tokenizer.decode(ids)
    assert sum(decoded) < 10 * len(ids)  # linear: the whole reply each step would be ~len(ids)**2 / 2


def test_a_reader_that_stops_early_stops_the_decoding_thread(vlm, monkeypatch):
    produced: list[int] = []

    class CountingClock(internvl.TokenClock):
        def put(self, value):
            if value.dim() == 1:
                produced.append(1)
            super().put(value)

    monkeypatch.setattr(internvl, "TokenClock", CountingClock)
    config = GenerationConfig(max_new_tokens=200)
    assert vlm.generate(CONVERSATIONS[0], config).output_tokens == 200  # read to the end, it runs long
    produced.clear()
    stream = vlm.stream(CONVERSATIONS[0], config)
    assert next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "internvl-stream"]
    assert len(produced) < 50  # the decoding stopped soon after the reader left


def test_an_error_in_the_decoding_thread_is_raised_to_the_reader(vlm, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("the model broke")

    monkeypatch.setattr(vlm.hf_model, "generate", broken)
    stream = vlm.stream(CONVERSATIONS[0], GREEDY)
    with pytest.raises(ValueError, match="the model broke"):
        list(stream)
    assert not [t for t in threading.enumerate() if t.name == "internvl-stream"]


def test_bad_input_to_stream_raises_at_the_call(vlm):
    with pytest.raises(ValueError, match="use generate"):
        vlm.stream(CONVERSATIONS[0], GenerationConfig(n=2, temperature=1.0))
    with pytest.raises(Exception, match="role"):
        vlm.stream([{"role": "robot", "content": "hi"}])


# -- images: labels and budget ----------------------------------------------------------------


def test_images_of_one_message_are_labelled_as_the_reference_chat_does(vlm):
    ids, pixels, image_tokens = vlm.build_inputs(CONVERSATIONS[3])
    # 896x448 is a 2x1 grid plus its thumbnail; 224x224 is one tile.
    expected = (
        f"<|im_start|>user\nImage-1: {_span(vlm, 3)}\nImage-2: {_span(vlm, 1)}\n"
        "Which is newer?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert ids == _ids(vlm, expected)
    assert pixels.shape[0] == 4 and image_tokens == 4 * 256 + 2 * 2


def test_one_image_per_message_is_not_labelled(vlm):
    ids, _, _ = vlm.build_inputs([Message.user(_screenshot(448, 448, 5), "Now?")])
    assert ids == _ids(vlm, f"<|im_start|>user\n{_span(vlm, 1)}\nNow?<|im_end|>\n<|im_start|>assistant\n")


def _history() -> list[Message]:
    return [
        Message.system("Act."),
        Message.user(_screenshot(448, 448, 6), "Step 1"),
        Message.assistant("click(x=1, y=2)"),
        Message.user(_screenshot(448, 448, 7), "Step 2"),
        Message.assistant("click(x=3, y=4)"),
        Message.user(_screenshot(448, 448, 8), "Step 3"),
    ]


def test_the_image_budget_drops_the_oldest_images_first(vlm):
    history = _history()
    ids_all, _, tokens_all = vlm.build_inputs(history)
    ids, pixels, image_tokens = vlm.build_inputs(history, keep_images=1)

    omitted = f"{OMITTED_IMAGE}\n"
    by_hand = [
        history[0],
        Message.user(omitted, "Step 1"),
        history[2],
        Message.user(omitted, "Step 2"),
        history[4],
        history[5],
    ]
    assert ids == vlm.build_inputs(by_hand)[0]
    assert tokens_all == 3 * 258 and image_tokens == 258
    assert vlm.tokenizer.decode(ids).count(OMITTED_IMAGE) == 2 and len(ids) < len(ids_all) - 2 * 200
    assert np.array_equal(pixels, vlm.build_inputs([history[5]])[1])  # the newest screenshot stayed

    none_kept = vlm.build_inputs(history, keep_images=0)
    assert none_kept[1] is None and none_kept[2] == 0
    assert vlm.build_inputs(history, keep_images=5)[0] == ids_all


def test_generate_applies_the_image_budget_from_the_config(vlm):
    completion = vlm.generate(_history(), GenerationConfig(max_new_tokens=2, keep_images=2))
    assert completion.image_tokens == 2 * 258
    assert completion.prompt_tokens == len(vlm.build_inputs(_history(), keep_images=2)[0])
    assert completion.extra["num_tiles"] == 2


# -- batches ------------------------------------------------------------------------------------


def test_a_left_padded_batch_gives_the_replies_of_single_calls(vlm):
    singles = [vlm.generate(c, GREEDY) for c in CONVERSATIONS]
    batch = vlm.generate_batch(CONVERSATIONS, GREEDY)
    assert len({c.prompt_tokens for c in singles}) == 4  # rows of four lengths: each padded differently
    assert len({c.text for c in singles}) == 5  # the replies tell every prompt apart, images included
    for single, batched in zip(singles, batch, strict=True):
        assert batched.text == single.text
        assert (batched.prompt_tokens, batched.image_tokens, batched.output_tokens) == (
            single.prompt_tokens,
            single.image_tokens,
            single.output_tokens,
        )
        assert batched.extra["finish_reason"] == single.extra["finish_reason"]
        assert batched.extra["batch_size"] == len(CONVERSATIONS)
    assert vlm.generate_batch([], GREEDY) == []


# -- sampled candidates -------------------------------------------------------------------------


def test_n_sampled_candidates_are_reproducible_with_a_seed(vlm):
    config = GenerationConfig(max_new_tokens=6, temperature=1.0, n=3, seed=7)
    first = vlm.generate(CONVERSATIONS[1], config)
    assert len(first.candidates) == 3 and first.text == first.candidates[0]
    assert len(set(first.candidates)) > 1
    assert first.output_tokens == sum(first.extra["candidate_tokens"])
    assert vlm.generate(CONVERSATIONS[1], config).candidates == first.candidates
    other = vlm.generate(CONVERSATIONS[1], GenerationConfig(max_new_tokens=6, temperature=1.0, n=3, seed=8))
    assert other.candidates != first.candidates


def test_each_candidate_sees_its_own_conversation_and_images(vlm):
    """Near-zero temperature samples the greedy reply: so each of the n copies of each
    conversation in a batch must have been given that conversation's own images."""
    rows = CONVERSATIONS[1:4]
    greedy = [vlm.generate(c, GREEDY).text for c in rows]
    cold = vlm.generate_batch(rows, GenerationConfig(max_new_tokens=8, temperature=1e-4, n=2, seed=1))
    assert [c.candidates for c in cold] == [(text, text) for text in greedy]


def test_top_p_and_max_new_tokens_are_honoured(vlm):
    greedy = vlm.generate(CONVERSATIONS[4], GREEDY).text
    # A tiny top_p keeps only the most likely token, so sampling at full temperature is greedy.
    nucleus_only = GenerationConfig(max_new_tokens=8, temperature=1.0, top_p=1e-6, n=2)
    nucleus = vlm.generate(CONVERSATIONS[4], nucleus_only)
    assert nucleus.candidates == (greedy, greedy)
    short = vlm.generate(CONVERSATIONS[4], GenerationConfig(max_new_tokens=3, temperature=1.0, n=2, seed=3))
    assert all(count <= 3 for count in short.extra["candidate_tokens"])


def test_candidates_are_decoded_from_prompts_we_repeat_ourselves(vlm, monkeypatch):
    """Each prompt goes in n times, tiles included, so no transformers expansion is relied on."""
    calls: list[tuple[int, int, int]] = []
    generate = vlm.hf_model.generate

    def spy(**kwargs):
        pixels = kwargs["pixel_values"].shape[0]
        calls.append((kwargs["input_ids"].shape[0], pixels, kwargs["generation_config"].num_return_sequences))
        return generate(**kwargs)

    monkeypatch.setattr(vlm.hf_model, "generate", spy)
    rows = CONVERSATIONS[1:4]  # 1, no and 4 tiles
    vlm.generate_batch(rows, GenerationConfig(max_new_tokens=2, temperature=1.0, n=3, seed=1))
    assert calls == [(3 * 3, 3 * (1 + 4), 1)]


def test_greedy_candidates_are_copies_of_the_greedy_reply(vlm):
    completion = vlm.generate(CONVERSATIONS[0], GenerationConfig(max_new_tokens=4, n=3))
    assert completion.candidates == (completion.text,) * 3


# -- what a completion reports ------------------------------------------------------------------


def test_a_completion_reports_tokens_and_times(vlm):
    completion = vlm.generate(CONVERSATIONS[1], GenerationConfig(max_new_tokens=4))
    ids, _, image_tokens = vlm.build_inputs(CONVERSATIONS[1])
    assert completion.prompt_tokens == len(ids) and completion.image_tokens == image_tokens == 258
    assert 1 <= completion.output_tokens <= 4
    assert 0 < completion.ttft_ms <= completion.total_ms
    assert completion.candidates == (completion.text,)


def test_a_completion_made_without_candidates_lists_its_text():
    assert Completion(text="done").candidates == ("done",)
    with pytest.raises(ValueError, match="first candidate"):
        Completion(text="a", candidates=("b", "a"))
    with pytest.raises(ValueError, match="n must"):
        GenerationConfig(n=0)
    with pytest.raises(ValueError, match="keep_images"):
        GenerationConfig(keep_images=-1)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_new_tokens": 0},
        {"temperature": -0.5},
        {"temperature": float("nan")},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"seed": -1},
        {"seed": 2**64},
        {"n": 0},
    ],
)
def test_a_generation_config_out_of_range_names_the_setting(bad):
    (name,) = bad
    with pytest.raises(ValueError, match=name):
        GenerationConfig(**bad)
