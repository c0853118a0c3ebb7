"""InternVL tiling: the fast path (`tile_image`) held to the plain reference (`tile_image_reference`),
and both to transformers' own GotOcr2 processor: same grid, same pixels."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from model.preprocess import IMAGENET_MEAN, IMAGENET_STD, Tiles, select_grid, tile_image, tile_image_reference

transformers = pytest.importorskip("transformers")
from transformers import GotOcr2ImageProcessorPil  # noqa: E402
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas  # noqa: E402

# One 8-bit level in normalized units, per channel, plus float32 rounding.
ONE_LEVEL = np.array([1 / 255 / s for s in IMAGENET_STD], dtype=np.float32)[None, :, None, None] + 1e-5
# The fast path skips the last rounding to 8 bits, and nothing else: half a level from the reference.
HALF_LEVEL = ONE_LEVEL * 0.5 + 1e-4

_rng = random.Random(7)
SIZES = [
    # tiny
    (1, 1), (3, 7), (7, 3), (2, 2), (1, 100), (100, 1), (13, 13),
    # extreme aspect ratios
    (10000, 50), (50, 3000), (5000, 20), (20, 5000), (4000, 100), (3000, 37),
    # screens, desktop and mobile
    (1280, 720), (1920, 1080), (1366, 768), (1440, 900), (1024, 768), (800, 600),
    (2560, 1440), (390, 844), (828, 1792), (1080, 1920), (1280, 800), (3840, 2160),
    # the tie-break: (1,1) vs (2,2) flips at area 0.5*448*448*4, (2,1) vs (4,2) at 0.5*448*448*8
    (448, 448), (633, 633), (634, 634), (950, 950), (951, 951), (1260, 630), (1300, 650), (896, 448),
    # random sizes, most of them not divisible by their grid
    *[(_rng.randint(16, 2400), _rng.randint(16, 2400)) for _ in range(24)],
]
SETTINGS = [(1, 12), (1, 6), (2, 12), (1, 1), (4, 24), (1, 40), (12, 12)]


def _reference(min_tiles: int, max_tiles: int) -> GotOcr2ImageProcessorPil:
    return GotOcr2ImageProcessorPil(
        crop_to_patches=True,
        min_patches=min_tiles,
        max_patches=max_tiles,
        size={"height": 448, "width": 448},
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
    )


def _image(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    """Noise on a gradient: the hardest content for a resampler, plus smooth regions."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 160, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(0, 96, (height, width, 4))
    pixels = np.clip(ramp + noise, 0, 255).astype(np.uint8)
    if mode == "RGBA":
        return Image.fromarray(pixels, "RGBA")
    return Image.fromarray(pixels[..., :3], "RGB").convert(mode)


def test_grid_matches_transformers_for_every_setting_and_many_sizes():
    rng = random.Random(11)
    sizes = [*SIZES, *[(rng.randint(1, 6000), rng.randint(1, 6000)) for _ in range(400)]]
    for min_tiles, max_tiles in SETTINGS:
        for width, height in sizes:
            expected = get_optimal_tiled_canvas((height, width), (448, 448), min_tiles, max_tiles)
            ours = select_grid(width, height, min_tiles=min_tiles, max_tiles=max_tiles)
            assert ours == tuple(expected), (width, height, min_tiles, max_tiles)


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_tiles_match_transformers_within_one_level(width, height):
    max_tiles = 6 if width * height > 4_000_000 else 12  # a smaller canvas keeps the suite quick
    image = _image(width, height, seed=width * 10007 + height)
    ours = tile_image(image, max_tiles=max_tiles)
    ref = _reference(1, max_tiles)(image, return_tensors="np")

    cols, rows = ours.grid
    assert ours.grid == get_optimal_tiled_canvas((height, width), (448, 448), 1, max_tiles)
    assert ours.num_tiles == int(ref["num_patches"][0]) == cols * rows + (cols * rows > 1)
    assert ours.pixel_values.dtype == np.float32
    assert ours.pixel_values.shape == ref["pixel_values"].shape == (ours.num_tiles, 3, 448, 448)
    assert (np.abs(ours.pixel_values - ref["pixel_values"]) <= ONE_LEVEL).all()


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_plain_reference_is_transformers_processor(width, height):
    max_tiles = 6 if width * height > 4_000_000 else 12
    image = _image(width, height, seed=width * 10007 + height)
    plain = tile_image_reference(image, max_tiles=max_tiles)
    ref = _reference(1, max_tiles)(image, return_tensors="np")
    assert plain.grid == get_optimal_tiled_canvas((height, width), (448, 448), 1, max_tiles)
    assert plain.pixel_values.dtype == np.float32
    assert plain.pixel_values.shape == ref["pixel_values"].shape
    np.testing.assert_allclose(plain.pixel_values, ref["pixel_values"], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_fast_path_is_within_half_a_level_of_the_plain_reference(width, height):
    max_tiles = 6 if width * height > 4_000_000 else 12
    image = _image(width, height, seed=width * 10007 + height)
    ours = tile_image(image, max_tiles=max_tiles)
    plain = tile_image_reference(image, max_tiles=max_tiles)
    assert ours.grid == plain.grid
    assert ours.pixel_values.dtype == np.float32
    assert ours.pixel_values.shape == plain.pixel_values.shape
    assert (np.abs(ours.pixel_values - plain.pixel_values) <= HALF_LEVEL).all()


@pytest.mark.parametrize(
    ("size", "mode", "options"),
    [
        ((500, 500), "RGB", {"min_tiles": 2, "max_tiles": 12}),
        ((3000, 120), "RGB", {"min_tiles": 4, "max_tiles": 24}),
        ((1000, 700), "RGB", {"max_tiles": 6, "tile_size": 224}),
        ((1000, 700), "RGB", {"max_tiles": 6, "tile_size": 336}),
        ((1280, 720), "RGB", {"max_tiles": 4, "thumbnail": False}),
        *[((700, 300), mode, {"max_tiles": 4}) for mode in ("RGBA", "L", "P", "LA")],
    ],
    ids=["min2", "min4-max24", "tile224", "tile336", "no-thumbnail", "RGBA", "L", "P", "LA"],
)
def test_the_fast_path_holds_to_the_plain_reference_for_every_option(size, mode, options):
    image = _image(*size, seed=12, mode=mode)
    ours = tile_image(image, **options)
    plain = tile_image_reference(image, **options)
    assert ours.grid == plain.grid
    assert ours.pixel_values.shape == plain.pixel_values.shape
    assert (np.abs(ours.pixel_values - plain.pixel_values) <= HALF_LEVEL).all()


@pytest.mark.parametrize(("min_tiles", "max_tiles", "size"), [(2, 12, (500, 500)), (4, 24, (3000, 120))])
def test_other_tile_limits_match_transformers(min_tiles, max_tiles, size):
    image = _image(*size, seed=3)
    ours = tile_image(image, min_tiles=min_tiles, max_tiles=max_tiles)
    ref = _reference(min_tiles, max_tiles)(image, return_tensors="np")
    assert ours.num_tiles == int(ref["num_patches"][0])
    assert (np.abs(ours.pixel_values - ref["pixel_values"]) <= ONE_LEVEL).all()


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA"])
def test_non_rgb_images_are_converted_as_transformers_does(mode):
    image = _image(700, 300, seed=5, mode=mode)
    ours = tile_image(image, max_tiles=4)
    ref = _reference(1, 4)(image, return_tensors="np")
    assert ours.pixel_values.shape == ref["pixel_values"].shape
    assert (np.abs(ours.pixel_values - ref["pixel_values"]) <= ONE_LEVEL).all()


def test_a_single_tile_grid_gets_no_thumbnail_and_thumbnail_can_be_turned_off():
    square = tile_image(_image(300, 300, seed=1))
    assert square.grid == (1, 1) and square.num_tiles == 1

    wide = _image(1280, 720, seed=2)
    with_thumb = tile_image(wide, max_tiles=4)
    without = tile_image(wide, max_tiles=4, thumbnail=False)
    assert with_thumb.grid == (2, 1)
    assert with_thumb.num_tiles == without.num_tiles + 1 == 3
    np.testing.assert_array_equal(with_thumb.pixel_values[:-1], without.pixel_values)


def test_tiles_are_row_major():
    # Four flat quadrants: each tile of a 2x2 grid must be exactly one colour.
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    pixels = np.zeros((896, 896, 3), dtype=np.uint8)
    for i, colour in enumerate(colours):
        r, c = divmod(i, 2)
        pixels[r * 448 : (r + 1) * 448, c * 448 : (c + 1) * 448] = colour
    tiles = tile_image(Image.fromarray(pixels), max_tiles=4)
    assert tiles.grid == (2, 2)
    for i, colour in enumerate(colours):
        centre = tiles.pixel_values[i, :, 224, 224]
        expected = (np.array(colour) / 255 - IMAGENET_MEAN) / IMAGENET_STD
        np.testing.assert_allclose(centre, expected, atol=1e-5)


def test_bad_tile_limits_are_rejected():
    image = _image(10, 10, seed=0)
    for tile in (tile_image, tile_image_reference):
        with pytest.raises(ValueError, match="min_tiles"):
            tile(image, min_tiles=3, max_tiles=2)
        with pytest.raises(ValueError, match="min_tiles"):
            tile(image, min_tiles=0)


def test_tiles_is_a_frozen_record():
    for tiles in (tile_image(_image(5, 5, seed=0)), tile_image_reference(_image(5, 5, seed=0))):
        assert isinstance(tiles, Tiles)
        with pytest.raises(AttributeError):
            tiles.grid = (2, 2)  # type: ignore[misc]


# What the fast path's speed rests on: Pillow's own taps, Pillow's pass order, an exact intermediate.

from model.fast_tiling import _taps, _vertical_first  # noqa: E402

BICUBIC = Image.Resampling.BICUBIC


def _one_pass(image: Image.Image, size: tuple[int, int], axis: int) -> np.ndarray:
    """A one-axis resize in exact integers with our taps: what Pillow's 8-bit pass computes."""
    pixels = np.asarray(image).astype(np.int64)
    index, fixed = _taps(pixels.shape[axis], size[1 - axis])
    lines = np.take(pixels, index, axis=axis)  # (..., out, k, ...) along the axis
    weights = fixed.reshape(fixed.shape + (1,) * (2 - axis))
    sums = (lines * weights).sum(axis=axis + 1) + (1 << 21)
    return np.clip(sums >> 22, 0, 255).astype(np.uint8)


def test_our_taps_reproduce_pillow_one_axis_resizes_bit_for_bit():
    rng = np.random.default_rng(21)
    for _ in range(60):
        width, height = (int(v) for v in rng.integers(1, 300, 2))
        out = int(rng.integers(1, 600))
        image = _image(width, height, seed=out)
        wide, tall = (out, height), (width, out)
        assert (_one_pass(image, wide, axis=1) == np.asarray(image.resize(wide, BICUBIC))).all()
        assert (_one_pass(image, tall, axis=0) == np.asarray(image.resize(tall, BICUBIC))).all()


def test_pass_order_is_pillows():
    rng = np.random.default_rng(5)
    for _ in range(150):
        sizes = width, height, out_width, out_height = tuple(int(v) for v in rng.integers(4, 160, 4))
        if width == out_width or height == out_height:
            continue  # one pass only: no order to get wrong
        image = _image(width, height, seed=width * height)
        full = np.asarray(image.resize((out_width, out_height), BICUBIC))
        vertical_first = image.resize((width, out_height), BICUBIC).resize((out_width, out_height), BICUBIC)
        assert _vertical_first(*sizes) == (full == np.asarray(vertical_first)).all(), sizes


@pytest.mark.parametrize(
    ("width", "height"), [(1920, 1080), (1080, 1920), (50, 3000), (777, 333), (640, 2000)],
)
def test_tiles_are_within_half_a_level_so_the_intermediate_image_is_pillows(width, height):
    # Our second pass is unrounded, so against Pillow's rounded result we are off by at most half
    # a level, unless a first-pass value differs from Pillow's: that would show here.
    image = _image(width, height, seed=99)
    ours = tile_image(image, max_tiles=12)
    ref = _reference(1, 12)(image, return_tensors="np")
    assert (np.abs(ours.pixel_values - ref["pixel_values"]) <= HALF_LEVEL).all()
    plain = tile_image_reference(image, max_tiles=12)
    assert (np.abs(ours.pixel_values - plain.pixel_values) <= HALF_LEVEL).all()


@pytest.mark.parametrize("tile_size", [224, 336])
def test_other_tile_sizes_match_transformers(tile_size):
    image = _image(1000, 700, seed=8)
    ours = tile_image(image, max_tiles=6, tile_size=tile_size)
    reference = GotOcr2ImageProcessorPil(
        crop_to_patches=True, max_patches=6, size={"height": tile_size, "width": tile_size},
        image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
    )
    ref = reference(image, return_tensors="np")["pixel_values"]
    assert ours.pixel_values.shape == ref.shape
    assert (np.abs(ours.pixel_values - ref) <= ONE_LEVEL).all()


def test_concurrent_calls_agree_and_leave_torch_threads_alone():
    import threading

    import torch

    images = [_image(1280 + 64 * i, 720, seed=i) for i in range(4)]
    expected = [tile_image(image).pixel_values for image in images]
    threads_before = torch.get_num_threads()
    fresh_before: list[int] = []
    probe = threading.Thread(target=lambda: fresh_before.append(torch.get_num_threads()))
    probe.start()
    probe.join()
    results: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        results[i] = tile_image(images[i]).pixel_values

    workers = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for i, pixels in enumerate(expected):
        np.testing.assert_array_equal(results[i], pixels)
    assert torch.get_num_threads() == threads_before
    # torch's default for new threads must survive too (a streaming decode thread would get it).
    fresh: list[int] = []
    probe = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    probe.start()
    probe.join()
    assert fresh == [fresh_before[0]]


def test_tiling_inside_torch_inference_mode_gives_the_same_tiles():
    # The helper thread must share the caller's inference mode, or torch refuses its writes.
    import torch

    image = Image.new("RGB", (1000, 600), (30, 120, 200))
    expected = tile_image(image, max_tiles=6).pixel_values
    with torch.inference_mode():
        inside = tile_image(image, max_tiles=6).pixel_values
    with torch.no_grad():
        no_grad = tile_image(image, max_tiles=6).pixel_values
    np.testing.assert_array_equal(inside, expected)
    np.testing.assert_array_equal(no_grad, expected)


def test_a_failing_task_raises_and_no_task_outlives_the_call():
    import threading
    import time

    from model.workshare import share

    started: list[int] = []
    lock = threading.Lock()

    def task(i: int) -> None:
        with lock:
            started.append(i)
        time.sleep(0.002)
        if i == 3:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        share([lambda i=i: task(i) for i in range(200)])
    count = len(started)
    time.sleep(0.05)
    assert len(started) == count < 200  # the rest were never started, even after the raise


def test_a_result_still_held_is_never_reused_for_the_next_call():
    # tile_image reuses its last output array once nothing refers to it any more: any
    # reference at all, a view or a tensor made from it included, must keep it untouched.
    import torch

    first, second = _image(900, 700, seed=1), _image(900, 700, seed=2)
    expected_first = tile_image(first).pixel_values.copy()
    expected_second = tile_image(second).pixel_values.copy()
    held = [tile_image(first), tile_image(first).pixel_values[1:],
            torch.from_numpy(tile_image(first).pixel_values)]
    for _ in range(3):
        tile_image(second)
    np.testing.assert_array_equal(held[0].pixel_values, expected_first)
    np.testing.assert_array_equal(held[1], expected_first[1:])
    np.testing.assert_array_equal(held[2].numpy(), expected_first)
    np.testing.assert_array_equal(tile_image(second).pixel_values, expected_second)


def test_an_output_nobody_holds_is_reused_and_a_new_shape_gets_a_new_array():
    image = _image(900, 700, seed=3)
    address = tile_image(image).pixel_values.ctypes.data  # the Tiles is gone after this line
    again = tile_image(image).pixel_values
    assert again.ctypes.data == address
    kept = again
    other = tile_image(image).pixel_values  # `kept` still holds the last one: a new array
    assert other.ctypes.data != kept.ctypes.data
    np.testing.assert_array_equal(other, kept)
    assert tile_image(image, max_tiles=2).pixel_values.shape[0] != kept.shape[0]


def test_a_pillow_that_cannot_map_our_buffer_gets_the_same_tiles(monkeypatch):
    # tile_image reads the pixels through Pillow's core paste into a mapped buffer; without it
    # (another Pillow), it falls back to np.asarray, and the tiles must not change.
    import PIL.Image

    image = _image(1100, 500, seed=4)
    expected = tile_image(image).pixel_values.copy()

    def refuse(*args, **kwargs):
        raise ValueError("this Pillow maps no buffers")

    monkeypatch.setattr(PIL.Image, "frombuffer", refuse)
    np.testing.assert_array_equal(tile_image(image).pixel_values, expected)


def test_an_image_opened_from_a_file_and_not_yet_loaded_tiles_the_same(tmp_path):
    image = _image(700, 400, seed=5)
    image.save(tmp_path / "shot.png")
    with Image.open(tmp_path / "shot.png") as lazy:  # Pillow reads the pixels on first use
        np.testing.assert_array_equal(tile_image(lazy).pixel_values, tile_image(image).pixel_values)


def test_a_pillow_that_copies_instead_of_mapping_gets_the_same_tiles(monkeypatch):
    # If frombuffer ever copies (a writable image), pasting into it would leave our buffer
    # stale: tile_image must notice and read the pixels another way.
    import PIL.Image

    image = _image(1100, 500, seed=6)
    expected = tile_image(image).pixel_values.copy()
    frombuffer = PIL.Image.frombuffer

    def copying(*args, **kwargs):
        copy = frombuffer(*args, **kwargs).copy()  # a writable image of its own
        return copy

    monkeypatch.setattr(PIL.Image, "frombuffer", copying)
    scratch = __import__("model.fast_tiling", fromlist=["_scratch_buffers"])._scratch_buffers
    scratch.get("pixels", np.empty(0))[...] = 0  # stale content, were it used
    np.testing.assert_array_equal(tile_image(image).pixel_values, expected)
