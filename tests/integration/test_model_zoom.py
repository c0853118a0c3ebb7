"""ModelGrounder's zoom-in pass: a crop around the first box, at tile resolution, mapped back.

The scripted model plays InternVL3 (weights cannot be downloaded here) and keeps the images
it was shown, so the tests check the second prompt's crop and the arithmetic of the map back;
the tiny real model runs the whole path through transformers.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agent.grounding import Box
from agent.grounding.model import ModelGrounder, zoom_window
from agent.prompts import GROUNDING_PROMPT
from model.scripted import ScriptedModel
from tools.coordinates import parse_box
from tools.errors import GroundingError
from tools.executor import Geometry, Observation


def observation(width: int, height: int) -> Observation:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return Observation(Image.fromarray(pixels), Geometry.identity(width, height))


def test_the_window_is_a_tile_or_twice_the_box_centred_and_kept_inside():
    size = (2560, 1440)
    assert zoom_window(Box(1000, 700, 1019, 709), size) == Box(785, 480, 1232, 927)  # one 448-px tile
    assert zoom_window(Box(1000, 400, 1399, 499), size) == Box(799, 225, 1598, 672)  # 2x the box wide
    assert zoom_window(Box(0, 0, 9, 9), size) == Box(0, 0, 447, 447)  # shifted in, not shrunk
    assert zoom_window(Box(2550, 1430, 2559, 1439), size) == Box(2112, 992, 2559, 1439)
    assert zoom_window(Box(0, 0, 9, 9), (300, 200)) == Box(0, 0, 299, 199)  # never more than the image


def test_the_second_pass_sees_the_crop_and_its_box_maps_back_to_the_screenshot():
    obs = observation(2560, 1440)
    first = "<box>[[391, 486, 398, 492]]</box>"  # pixels (1001, 699)..(1018, 708) of the screenshot
    model = ScriptedModel([first, "<ref>x</ref><box>[[250, 500, 500, 750]]</box>"])
    found = ModelGrounder(model).locate(obs, "the tiny icon")  # 2560x1440: zoom is on by default

    assert len(model.calls) == 2
    (coarse,), (fine,) = model.calls
    assert coarse.images[0] is obs.image and fine.text == GROUNDING_PROMPT.format("the tiny icon")
    window = zoom_window(Box(*parse_box(first, image_size=obs.size)), obs.size)
    assert window == Box(785, 479, 1232, 926)
    crop = fine.images[0]
    assert crop.size == (448, 448)
    assert np.array_equal(np.asarray(crop), np.asarray(obs.image)[window.top:window.bottom + 1,
                                                                   window.left:window.right + 1])
    # 250..500 of 448 px is 112..224 px of the crop, 500..750 is 224..335.
    assert found.box == Box(window.left + 112, window.top + 224, window.left + 224, window.top + 335)
    assert (found.source, found.point) == ("model", found.box.center)


def test_zoom_is_auto_above_1920x1080_and_can_be_forced_either_way():
    answer = "<box>[[400, 400, 420, 420]]</box>"
    full_hd = ScriptedModel([answer])
    ModelGrounder(full_hd).locate(observation(1920, 1080), "x")
    assert len(full_hd.calls) == 1  # 1920x1080 is not above the line
    forced = ScriptedModel([answer, answer])
    ModelGrounder(forced, zoom=True).locate(observation(1280, 720), "x")
    assert [m[0].images[0].size for m in forced.calls] == [(1280, 720), (448, 448)]
    off = ScriptedModel([answer])
    ModelGrounder(off, zoom=False).locate(observation(2560, 1440), "x")
    assert len(off.calls) == 1


def test_a_second_answer_without_a_box_keeps_the_first_box():
    model = ScriptedModel(["<box>[[500, 500, 510, 510]]</box>", "I cannot see it."])
    found = ModelGrounder(model).locate(observation(2560, 1440), "x")
    assert found.box == Box(1280, 720, 1305, 734)


@pytest.mark.model
def test_the_tiny_model_zooms_without_crashing():
    from model.internvl import InternVLModel

    obs = observation(2560, 1440)
    grounder = ModelGrounder(InternVLModel.from_pretrained("tiny"), max_new_tokens=16, zoom=True)
    try:
        found = grounder.locate(obs, "the OK button")
    except GroundingError as exc:  # random weights: usually no box at all
        assert "could not find 'the OK button'" in exc.message
    else:
        assert found.box.left >= 0 and found.box.right < 2560 and found.box.bottom < 1440
