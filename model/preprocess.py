"""InternVL dynamic tiling: one image -> a grid of 448x448 tiles (+ a thumbnail).

This is the reference `dynamic_preprocess` of InternVL (and of transformers'
GotOcr2 image processor with `crop_to_patches=True`), written for speed:

- The canvas is resized once, exactly as the reference does, so the pixels are the
  reference's bit for bit before normalization.
- Normalization is one table lookup per channel: an 8-bit value has only 256
  normalized values, so we precompute them and gather straight from strided views
  of the canvas into the channel-first tiles: no float64 temporaries, no crop
  copies and no separate transpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "TILE_SIZE", "Tiles", "select_grid", "tile_image", "to_rgb"]

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


@lru_cache(maxsize=4)
def _normalize_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: the normalized value of every 8-bit level, per channel."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    table = (levels[None, :] - np.asarray(mean)[:, None]) / np.asarray(std)[:, None]
    return table.astype(np.float32)


def _normalize_into(out: np.ndarray, canvas: np.ndarray, rows: int, cols: int) -> None:
    """Cut an (rows*t, cols*t, 3) uint8 canvas into row-major tiles of `out` (rows*cols, 3, t, t).

    Views only: each channel is one gather from the 256-entry table, written in place.
    """
    tile = out.shape[-1]
    table = _normalize_table(IMAGENET_MEAN, IMAGENET_STD)
    tiles = canvas.reshape(rows, tile, cols, tile, 3).transpose(0, 2, 1, 3, 4)  # (rows, cols, t, t, 3)
    dst = out.reshape(rows, cols, 3, tile, tile)
    for channel in range(3):
        # mode="wrap" lets numpy write into the strided view unbuffered (uint8 indices are in range).
        np.take(table[channel], tiles[..., channel], out=dst[:, :, channel], mode="wrap")


def tile_image(
    image: Image,
    *,
    max_tiles: int = 12,
    min_tiles: int = 1,
    tile_size: int = TILE_SIZE,
    thumbnail: bool = True,
) -> Tiles:
    """Split `image` into InternVL's dynamic tiles, normalized for the vision tower."""
    from PIL import Image as PILImage

    if not 1 <= min_tiles <= max_tiles:
        raise ValueError(f"need 1 <= min_tiles <= max_tiles, got {min_tiles=}, {max_tiles=}")
    rgb = to_rgb(image)
    width, height = rgb.size
    cols, rows = select_grid(width, height, min_tiles=min_tiles, max_tiles=max_tiles, tile_size=tile_size)

    n_grid = cols * rows
    n = n_grid + 1 if thumbnail and n_grid > 1 else n_grid
    bicubic = PILImage.Resampling.BICUBIC
    out = np.empty((n, 3, tile_size, tile_size), dtype=np.float32)
    # One resize of the whole canvas, never one per tile: Pillow >= 13 picks the order of its
    # two passes from the scale factors, so a per-tile `resize(box=...)` can round differently
    # from the full resize (by 20+ levels on tall images) and drift from the reference.
    canvas = np.asarray(rgb.resize((cols * tile_size, rows * tile_size), resample=bicubic))
    _normalize_into(out[:n_grid], canvas, rows, cols)
    if n > n_grid:
        _normalize_into(out[n_grid:], np.asarray(rgb.resize((tile_size, tile_size), resample=bicubic)), 1, 1)
    return Tiles(pixel_values=out, grid=(cols, rows))
