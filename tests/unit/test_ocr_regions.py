"""Where OCR looks: the regions of a screenshot that differ from its background."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from agent.grounding import Box
from agent.grounding.regions import ALIGN, content_regions
from agent.grounding.text_match import TextLine, reading_order

pytestmark = pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="pip install '.[ocr]'")


def _screen(width: int, height: int, colour: str = "black") -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (width, height), colour)
    return image, ImageDraw.Draw(image)


def _inside(inner: Box, outer: Box) -> bool:
    return (outer.left <= inner.left and outer.top <= inner.top and inner.right <= outer.right
            and inner.bottom <= outer.bottom)


def test_a_small_window_on_a_dark_screen_is_one_small_aligned_region():
    image, draw = _screen(1920, 1080)
    draw.rectangle((1500, 820, 1650, 910), fill="#d9d9d9")
    draw.text((1510, 830), "Apply", fill="black", font=ImageFont.truetype("DejaVuSans.ttf", 11))
    [region] = content_regions(np.asarray(image))
    assert _inside(Box(1500, 820, 1650, 910), region)
    assert region.width % ALIGN == 0 and region.height % ALIGN == 0
    assert region.width * region.height < 0.02 * 1920 * 1080


def test_far_apart_windows_are_separate_regions_and_close_words_stay_together():
    image, draw = _screen(2560, 1440, "#203040")
    font = ImageFont.truetype("DejaVuSans.ttf", 12)
    draw.text((40, 40), "Save     changes", fill="white", font=font)  # words 30-odd px apart
    draw.text((2300, 1300), "Help", fill="white", font=font)
    regions = content_regions(np.asarray(image))
    assert len(regions) == 2
    first, second = regions
    assert _inside(Box(40, 40, 150, 55), first) and _inside(Box(2300, 1300, 2330, 1315), second)


def test_a_busy_screen_is_read_whole_and_a_blank_one_not_at_all():
    noise = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    assert content_regions(noise) == [Box(0, 0, 1279, 719)]
    assert content_regions(np.zeros((720, 1280, 3), np.uint8)) == []


def test_many_scattered_marks_are_joined_into_a_bounded_number_of_regions():
    image, draw = _screen(1920, 1080, "white")
    for i in range(200):
        x, y = (i * 97) % 1880, (i * 53) % 1040
        draw.rectangle((x, y, x + 6, y + 6), fill="black")
    regions = content_regions(np.asarray(image))
    assert 1 <= len(regions) <= 24
    for i, a in enumerate(regions):  # no text would be read twice
        for b in regions[i + 1:]:
            assert a.right < b.left or b.right < a.left or a.bottom < b.top or b.bottom < a.top


def test_lines_from_several_regions_come_back_in_reading_order():
    lines = [TextLine("Close", Box(300, 100, 340, 112)), TextLine("Title", Box(10, 10, 60, 22)),
             TextLine("Apply", Box(200, 102, 240, 114))]
    assert [line.text for line in reading_order(lines)] == ["Title", "Apply", "Close"]
