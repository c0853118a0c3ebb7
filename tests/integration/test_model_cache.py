"""The vision-tile and prompt-prefix caches (model/cache.py) change nothing but the time.

The tiny checkpoint looks at real Chromium screenshots of a local page: once, again
unchanged, then with one widget changed. A model with both caches is compared with one
without: the embeddings and logits bit for bit (fp32 on the CPU), the greedy replies
token for token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model.base import GenerationConfig, Message
from model.cache import TileCache
from model.internvl import InternVLModel
from tests.helpers.http import serving_folder
from tools.browser import BrowserExecutor

pytestmark = [pytest.mark.model, pytest.mark.browser]

torch = pytest.importorskip("torch")

SYSTEM = "You operate a web browser. Reply with one action: click(x, y), type(text), finish()."
PAGE = """<!doctype html><html><body style="margin:0;font:16px sans-serif;background:#f4f4f4">
<button id="status" style="position:absolute;left:40px;top:40px;width:120px;height:32px">Ready</button>
<h1 style="position:absolute;left:400px;top:200px">Settings</h1>
<input style="position:absolute;left:400px;top:300px;width:300px" value="name">
<p style="position:absolute;left:800px;top:500px">Some text at the bottom right</p>
</body></html>"""


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Three shots of one page: the first, the same again, and with the button's label changed."""
    folder: Path = tmp_path_factory.mktemp("page")
    (folder / "index.html").write_text(PAGE)
    with serving_folder(folder) as url, BrowserExecutor(start_url=f"{url}/index.html") as browser:
        first = browser.observe().image
        again = browser.observe().image
        browser.page.evaluate("document.getElementById('status').textContent = 'Saved!'")
        changed = browser.observe().image
    return [first, again, changed]


@pytest.fixture(scope="module")
def models() -> Iterator[tuple[InternVLModel, InternVLModel]]:
    torch.set_num_threads(2)
    cached = InternVLModel.from_pretrained("tiny", max_tiles=6)
    plain = InternVLModel.from_pretrained("tiny", max_tiles=6, tile_cache_mb=0, prefix_cache=False)
    yield cached, plain


def _step(image) -> list[Message]:
    return [Message.system(SYSTEM), Message.user(image, "Goal: save the settings. What next?")]


def test_an_unchanged_screen_reuses_every_tile_and_one_widget_recomputes_one(models, screenshots):
    cached, plain = models
    cached.caches.tiles.clear()
    config = GenerationConfig(max_new_tokens=16)
    first, again, changed = (cached.generate(_step(shot), config) for shot in screenshots)
    tiles = first.extra["num_tiles"]
    assert tiles > 2
    assert first.extra["tiles_computed"] + first.extra["tiles_reused"] == tiles
    assert (again.extra["tiles_computed"], again.extra["tiles_reused"]) == (0, tiles)
    # The button's own tile and the thumbnail change; every other tile is reused.
    assert (changed.extra["tiles_computed"], changed.extra["tiles_reused"]) == (2, tiles - 2)
    for shot, completion in zip(screenshots, (first, again, changed), strict=True):
        reference = plain.generate(_step(shot), config)
        assert completion.text == reference.text
        assert completion.output_tokens == reference.output_tokens
        assert reference.extra["tiles_reused"] == 0


def test_cached_tile_features_give_transformers_embeddings_and_logits_bit_for_bit(models, screenshots):
    cached, plain = models
    for shot in screenshots:  # the last one mixes reused and fresh tiles
        prompt = cached._prompts.build(_step(shot))
        ids = torch.tensor([prompt.ids])
        model = plain.hf_model
        with torch.inference_mode():
            embeds, _, _ = cached.caches.embeddings(ids, prompt.pixel_values, cached.image_token_id)
            pixels = torch.from_numpy(prompt.pixel_values)
            features = model.model.get_image_features(pixel_values=pixels).pooler_output
            mask = (ids == cached.image_token_id).unsqueeze(-1)
            expected = model.get_input_embeddings()(ids).masked_scatter(mask, features)
            assert torch.equal(embeds, expected)
            logits = model(inputs_embeds=embeds).logits
            assert torch.equal(logits, model(input_ids=ids, pixel_values=pixels).logits)


def test_the_system_prompt_is_prefilled_once_and_never_mutated(models, screenshots):
    cached, plain = models
    cached.caches.prefixes.clear()
    config = GenerationConfig(max_new_tokens=16)
    prompt = cached._prompts.build(_step(screenshots[0]))
    assert 0 < prompt.prefix_len < prompt.ids.index(cached._prompts.start_id)
    replies = [cached.generate(_step(shot), config) for shot in screenshots]
    assert [r.extra["prefix_tokens_reused"] for r in replies] == [0, prompt.prefix_len, prompt.prefix_len]
    (stored,) = cached.caches.prefixes._entries.values()
    assert stored.get_seq_length() == prompt.prefix_len  # each call decoded into its own copy
    text_only = [Message.system(SYSTEM), Message.user("Say hello.")]
    for _ in range(2):
        assert cached.generate(text_only, config).text == plain.generate(text_only, config).text
    for shot, reply in zip(screenshots, replies, strict=True):
        assert reply.text == plain.generate(_step(shot), config).text


def test_the_tile_cache_stays_within_its_byte_bound():
    cache = TileCache(max_bytes=3 * 1024 * 4)
    for i in range(5):
        cache.put(bytes([i]), torch.zeros(1024))
    assert len(cache) == 3 and cache.bytes == 3 * 1024 * 4
    assert cache.get(bytes([0])) is None and cache.get(bytes([4])) is not None
    cache.put(b"big", torch.zeros(10_000))  # larger than the whole bound: not kept
    assert cache.get(b"big") is None
