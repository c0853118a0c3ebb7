"""InternVL dynamic tiling: one image -> a grid of 448x448 tiles (+ a thumbnail).

The algorithm is InternVL's `dynamic_preprocess` (transformers' GotOcr2 processor with
`crop_to_patches=True`):

1. Choose a grid of (cols, rows) tiles, min_tiles <= cols * rows <= max_tiles, whose aspect
   ratio is closest to the image's (`select_grid`, with the reference's tie-break).
2. Resize the image with Pillow's bicubic filter to (cols * 448, rows * 448), and cut that
   canvas into tiles, row by row.
3. If there is more than one tile, add a thumbnail: the whole image resized to one tile, last.
4. Scale each tile to [0, 1] and normalize it with ImageNet's mean and std, channels first.

`tile_image_reference` is those steps in Pillow and numpy, as they read. `tile_image`, which
callers use, computes the same tiles about 5x faster with the fast path in model/fast_tiling.py:
there, the intermediate image of Pillow's two-pass resize is Pillow's bit for bit, and the output
lies within half an 8-bit level of the reference's, the last rounding being skipped.
tests/unit/test_preprocess.py holds the fast path to that.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from model import fast_tiling

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "TILE_SIZE", "Tiles", "select_grid", "tile_image",
    "tile_image_reference", "to_rgb",
]

TILE_SIZE = 448
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True, eq=False)
class Tiles:
    """The model's view of one image: `pixel_values` is float32 (n, 3, tile, tile).

    `grid` is (cols, rows) of the crop grid; `num_tiles` counts the thumbnail too.
    """

    pixel_values: np.ndarray
    grid: tuple[int, int]

    @property
    def num_tiles(self) -> int:
        return int(self.pixel_values.shape[0])


@lru_cache(maxsize=64)
def _candidate_grids(min_tiles: int, max_tiles: int) -> tuple[tuple[int, int], ...]:
    # Ordered by tile count, as the reference does. Within one count the reference's order
    # comes from a set; ours is transformers' (cols-major). The order could only matter for a
    # tie between two grids with the same count on either side of the image's aspect ratio,
    # which cannot happen when min_tiles == 1 (checked for every max_tiles up to 40).
    grids = [
        (cols, rows)
        for cols in range(1, max_tiles + 1)
        for rows in range(1, max_tiles + 1)
        if min_tiles <= cols * rows <= max_tiles
    ]
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))


def select_grid(
    width: int, height: int, *, min_tiles: int = 1, max_tiles: int = 12, tile_size: int = TILE_SIZE
) -> tuple[int, int]:
    """The (cols, rows) grid InternVL picks for an image of `width` x `height` pixels."""
    aspect = width / height
    area = width * height
    best_diff = float("inf")
    best = (1, 1)
    for cols, rows in _candidate_grids(min_tiles, max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best_diff = diff
            best = (cols, rows)
        # On a tie, the larger grid wins only if the image fills more than half of it.
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * cols * rows:
            best = (cols, rows)
    return best


def to_rgb(image: Image) -> Image:
    """RGB, with any transparency composited onto white (as transformers' processors do)."""
    from PIL import Image as PILImage

    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _check_limits(min_tiles: int, max_tiles: int) -> None:
    if not 1 <= min_tiles <= max_tiles:
        raise ValueError(f"need 1 <= min_tiles <= max_tiles, got {min_tiles=}, {max_tiles=}")


def tile_image_reference(image: Image, *, max_tiles: int = 12, min_tiles: int = 1, tile_size: int = TILE_SIZE,
                         thumbnail: bool = True) -> Tiles:
    """InternVL's tiles of `image`, computed plainly: the definition `tile_image` is held to."""
    from PIL.Image import Resampling

    _check_limits(min_tiles, max_tiles)
    rgb = to_rgb(image)
    cols, rows = select_grid(*rgb.size, min_tiles=min_tiles, max_tiles=max_tiles, tile_size=tile_size)
    canvas = np.asarray(rgb.resize((cols * tile_size, rows * tile_size), Resampling.BICUBIC))
    tiles = [
        canvas[r * tile_size : (r + 1) * tile_size, c * tile_size : (c + 1) * tile_size]
        for r in range(rows)
        for c in range(cols)
    ]
    if thumbnail and cols * rows > 1:
        tiles.append(np.asarray(rgb.resize((tile_size, tile_size), Resampling.BICUBIC)))
    pixels = np.stack(tiles).astype(np.float32) / np.float32(255)  # (n, tile, tile, RGB)
    pixels = (pixels - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    return Tiles(pixel_values=np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)), grid=(cols, rows))


def tile_image(image: Image, *, max_tiles: int = 12, min_tiles: int = 1, tile_size: int = TILE_SIZE,
               thumbnail: bool = True) -> Tiles:
    """Split `image` into InternVL's dynamic tiles, normalized for the vision tower.

    The tiles of `tile_image_reference`, within half an 8-bit level, about 5x faster. Runs on
    this thread and one helper thread (created on first use); while it runs, torch's intra-op
    thread count on this thread is 1, and it is put back before returning. Between calls it
    keeps its buffers and its last output (53 MB for a 1080p screenshot); that output array is
    returned again only once nothing refers to it.
    """
    _check_limits(min_tiles, max_tiles)
    with fast_tiling.exclusive():  # one call at a time, from reading the image on
        rgb = to_rgb(image)
        cols, rows = select_grid(*rgb.size, min_tiles=min_tiles, max_tiles=max_tiles, tile_size=tile_size)
        pixels = fast_tiling.tile(
            rgb, (cols, rows), thumbnail=thumbnail and cols * rows > 1, tile_size=tile_size,
            mean=IMAGENET_MEAN, std=IMAGENET_STD,
        )
        return Tiles(pixel_values=pixels, grid=(cols, rows))
