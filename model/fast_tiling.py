"""The fast path of InternVL tiling: the pixels of `tile_image`, 5x faster than transformers.

model/preprocess.py holds the plain algorithm (`tile_image_reference`: Pillow's bicubic resize,
cut into tiles, ImageNet normalization) and the grid choice. `tile` here computes the same tiles:
its intermediate image is Pillow's bit for bit, and its output lies within half an 8-bit level of
the reference's (tests/unit/test_preprocess.py holds it to both that and transformers' processor).
Each trick below is here because it was measured to pay; the figures are for a 1920x1080
screenshot into 12 tiles and a thumbnail unless said otherwise (bench/preprocess.py).

The arithmetic. Pillow resizes in two separable passes, the first rounded to 8 bits. We run both
passes as weighted sums of table rows with torch's 8-bit embedding-bag kernel (vectorized, where
Pillow's loops are scalar), on Pillow's own fixed-point taps (`_taps`) and in Pillow's order of
the passes (`_vertical_first`):

- First pass, in float32: a sum that lands within its error bound of a rounding boundary (about
  one in a thousand) is recomputed in exact integers, so the intermediate image is Pillow's.
- Second pass: unrounded, the normalization folded into each table row's scale and bias (the 8
  bytes the kernel reads after each row), one bag per output row of a tile.
- int32 indices keep torch on fbgemm's fast path: int64 ones are about 10x slower.
- The first pass makes 64 output lines a call, whose float32 sums stay in the L2 cache; numpy
  converts them to uint8 (then transposes) faster than torch does.

The threads (model/workshare.py). The kernels are memory-bound and last about a millisecond
each. The work is cut into tasks of that size, taken from one queue by the caller and one helper
thread, torch single-threaded on both: torch's OpenMP team gained little on them and, on a busy
machine, its spinning threads made them up to 10x slower. With that alone: 4.6x to 5.2x faster
than transformers' processor with two free cores, but 3.4-3.5x pinned to one. Fresh memory and
cache misses cost as much as the arithmetic there, and the memory work below brought one core to 4x:

- Output reuse. A fresh 31 MB output array was page-faulted in on some calls (the kernel zeroes
  every page on first touch; up to 5 ms, as often as malloc hands back fresh pages). The last
  call's array is returned again once nothing refers to it: every view, tensor or Tiles made from
  it holds a reference, so `sys.getrefcount` proves it unused. That proof holds only on CPython
  < 3.14 with the GIL (3.14 stops counting some references held by local variables, and a
  free-threaded build defers counts); elsewhere every call gets a new array.
- Scratch buffers. The pixel copy and the tables of both passes (22 MB) are kept from call to
  call, used by one call at a time (`workshare.exclusive`).
- Reading the pixels. np.asarray(rgb) copies them twice into a fresh 6 MB array, page-faulted in
  on most calls. Pillow's core paste into an "RGBX" image mapped onto the reused buffer copies them
  once (Pillow keeps RGB as 4 bytes a pixel). A Pillow that cannot map it gets np.asarray.
- The row stride of that buffer is an odd number of 64-byte cache lines: the table copy reads 64
  rows down a column, and rows a multiple of 4 KB apart (2560-pixel rows: 10 KB) share cache
  sets, which ran 2.5x slower.
- The transpose into the first pass's table: numpy's transposing copy of whole lines reads the
  source in a bad cache pattern. Copied in pieces of 64 lines, each piece's source stays in the
  cache while it is transposed: 1.5 ms against 3.0 ms. numpy drops the GIL to copy, so the pieces
  are shared tasks too.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

import numpy as np

from model.workshare import exclusive, share

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["exclusive", "tile"]

_ONE = 1 << 22  # Pillow's 8-bit resampling keeps 22 fraction bits (PRECISION_BITS)


# --- The arithmetic: Pillow's taps, in Pillow's order, as bags of table rows ----------------------


@lru_cache(maxsize=64)
def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's bicubic taps along one axis: (n_out, k) source indices and fixed-point weights.

    The same double arithmetic, in the same order, as Pillow's `precompute_coeffs` and
    `normalize_coeffs_8bpc`, so the integer weights are Pillow's own.
    """
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    center = (np.arange(n_out) + 0.5) * scale
    first = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C casts truncate
    count = np.minimum((center + support + 0.5).astype(np.int64), n_in) - first
    x = np.arange(math.ceil(support) * 2 + 1)
    d = np.abs(((first[:, None] + x).astype(np.float64) - center[:, None] + 0.5) * (1.0 / filterscale))
    far = (((d - 5.0) * d + 8.0) * d - 4.0) * -0.5
    w = np.where(d < 1.0, (1.5 * d - 2.5) * d * d + 1.0, np.where(d < 2.0, far, 0.0))
    w[x >= count[:, None]] = 0.0
    total = w[:, 0].copy()
    for i in range(1, len(x)):  # left to right, as Pillow sums: numpy's pairwise sum may round differently
        total += w[:, i]
    w /= np.where(total == 0.0, 1.0, total)[:, None]
    fixed = (w * _ONE + np.where(w < 0.0, -0.5, 0.5)).astype(np.int64)
    return np.minimum(first[:, None] + x, n_in - 1), fixed


def _vertical_first(width: int, height: int, out_width: int, out_height: int) -> bool:
    """Pillow's order of the two passes (the rounding in between makes it matter).

    Pillow >= 13 runs the vertical pass first when the height shrinks by more than twice as
    many pixels as the width (python-pillow/Pillow#9549); older Pillow never does.
    """
    from PIL import __version__

    newer = int(__version__.split(".")[0]) >= 13
    return newer and height > out_height and height - out_height > 2 * (width - out_width)


_Bags = tuple[Any, Any, Any]  # torch offsets, int32 indices, float32 weights: one kernel call


def _bags(index: np.ndarray, fixed: np.ndarray, per: int) -> list[_Bags]:
    """Equal-length bags, `per` a call. int32 indices keep torch on fbgemm's fast path (int64
    ones are ~10x slower); the weights are exact in float32 (|fixed| < 2**24)."""
    import torch

    flat = torch.from_numpy(np.ascontiguousarray(index, dtype=np.int32))
    weights = torch.from_numpy((fixed / _ONE).astype(np.float32))
    offsets = torch.arange(0, per * index.shape[1], index.shape[1], dtype=torch.int32)
    return [(offsets, flat[i : i + per].reshape(-1), weights[i : i + per].reshape(-1))
            for i in range(0, len(index), per)]


def _sums(table: Any, bags: _Bags) -> Any:
    """sums[b] = sum over bag b of weight * (scale * row + bias), each table row uint8."""
    import torch

    offsets, index, weights = bags
    return torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
        table, index, offsets, False, 0, False, weights, None, False
    )


def _row_bytes(scale: float, bias: float) -> np.ndarray:
    """The 8 bytes after each table row: float32 scale and bias applied to its uint8 values."""
    return np.array([scale, bias], dtype=np.float32).view(np.uint8)


@dataclass(frozen=True)
class _Resize:
    """One resize (the grid canvas, or the thumbnail) as two passes of row sums.

    The first runs along axis p (x; y when `vertical`) over a table whose row i is source line
    i, channel-major; the second along axis q over rows of `tile` values of the intermediate
    image: row ((channel * q_in + q) * blocks + block), a block being a tile's extent along p.
    """

    vertical: bool
    p_in: int
    q_in: int
    blocks: int
    taps: tuple[np.ndarray, np.ndarray]  # the first pass's, for the exact recomputation
    bags: list[_Bags]  # the first pass's, `_Plan.chunk` output lines a call
    error: float  # a bound on the first pass's float32 error, in 8-bit levels


@dataclass(frozen=True)
class _Plan:
    resizes: tuple[_Resize, ...]  # the grid, then the thumbnail if any
    rows: tuple[int, ...]  # where each resize's rows start in the second pass's table, then the end
    bags: list[_Bags]  # the second pass's, one output tile a call
    transposed: tuple[bool, ...]  # per output tile: its bags ran along x (vertical pass first)
    chunk: int  # first-pass output lines a call: 64 keep their float32 sums in the L2 cache
    slack: float  # every first-pass sum gets 0.5 + slack, slack >= every resize's error


@lru_cache(maxsize=16)
def _plan(width: int, height: int, cols: int, rows: int, thumbnail: bool, tile: int) -> _Plan:
    jobs = [(cols * tile, rows * tile, [(r, c) for r in range(rows) for c in range(cols)])]
    if thumbnail:
        jobs.append((tile, tile, [(0, 0)]))
    chunk, resizes, starts, bags, transposed = math.gcd(tile, 64), [], [0], [], []
    for out_width, out_height, grid in jobs:
        vertical = _vertical_first(width, height, out_width, out_height)
        p_in, p_out = (height, out_height) if vertical else (width, out_width)
        q_in, q_out = (width, out_width) if vertical else (height, out_height)
        taps = _taps(p_in, p_out)
        # k float32 multiply-adds of 8-bit values, two roundings each: <= 2k * 2**-24 * 256 * sum|w|.
        error = 2 * taps[0].shape[1] * 2.0**-24 * 256 * float(np.abs(taps[1]).sum(1).max() / _ONE) + 2.0**-16
        resizes.append(_Resize(vertical, p_in, q_in, p_out // tile, taps, _bags(*taps, chunk), error))
        q_index, q_fixed = _taps(q_in, q_out)
        index, fixed = [], []
        for r, c in grid:
            q_block, p_block = (c, r) if vertical else (r, c)
            lines = slice(q_block * tile, (q_block + 1) * tile)
            for channel in range(3):
                index.append(starts[-1] + (channel * q_in + q_index[lines]) * (p_out // tile) + p_block)
                fixed.append(q_fixed[lines])
        bags += _bags(np.concatenate(index), np.concatenate(fixed), 3 * tile)
        transposed += [vertical] * len(grid)
        starts.append(starts[-1] + 3 * q_in * (p_out // tile))
    slack = max(job.error for job in resizes)
    return _Plan(tuple(resizes), tuple(starts), bags, tuple(transposed), chunk, slack)


def _first_pass(plan: _Plan, job: _Resize, table: np.ndarray, second: np.ndarray, chunks: range) -> None:
    """Write `chunks` of the intermediate image, rounded as Pillow rounds it, into `second`.

    Each sum carries + 0.5 + slack (the table's bias): Pillow rounds half up, so floor(sum)
    is Pillow's value unless the sum lies within slack + error above an integer. Clipping to
    [0.5, 255.5] first keeps saturated values (0 and 255) clear of that check.
    """
    import torch

    tile, chunk, threshold = second.shape[1] - 8, plan.chunk, plan.slack + job.error
    packed = torch.from_numpy(table)
    rows = second[:, :tile].reshape(3, job.q_in, job.blocks, tile)
    unsure = []
    for c in chunks:
        sums = _sums(packed, job.bags[c]).clamp_(0.5, 255.5)
        block, at = divmod(c * chunk, tile)
        floors = sums.numpy().astype(np.uint8)  # numpy converts (then transposes) faster than torch
        rows[:, :, block, at : at + chunk] = floors.reshape(chunk, 3, job.q_in).transpose(1, 2, 0)
        unsure.append(np.flatnonzero(sums.frac_().numpy() < threshold) + c * chunk * 3 * job.q_in)
    line, column = np.divmod(np.concatenate(unsure), 3 * job.q_in)
    if line.size:  # about one sum in a thousand: redo those in integers, exactly as Pillow does
        index, fixed = job.taps
        source = np.take(table, index[line] * table.shape[1] + column[:, None])  # flat: faster than 2-D
        exact = np.einsum("ij,ij->i", source.astype(np.int64), fixed[line]) + (_ONE >> 1)
        block, at = np.divmod(line, tile)
        rows[column // job.q_in, column % job.q_in, block, at] = np.clip(exact >> 22, 0, 255)


def _second_pass(
    plan: _Plan, second: Any, out: Any, t: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> None:
    """Output tile `t`: one bag per (channel, row), normalized by the table rows' scale and bias."""
    import torch

    pixels = _sums(second, plan.bags[t]).view(3, out.shape[-1], out.shape[-1])
    if plan.transposed[t]:
        pixels = pixels.transpose(1, 2)
    for channel, (m, s) in enumerate(zip(mean, std, strict=True)):
        torch.clamp(pixels[channel], -m / s, (1.0 - m) / s, out=out[t, channel])  # Pillow clips


# --- The memory: buffers kept from call to call ---------------------------------------------------

_scratch_buffers: dict[str, np.ndarray] = {}  # the pixels and the tables: 22 MB at 1080p
_last_output: np.ndarray | None = None


def _scratch(name: str, shape: tuple[int, int]) -> np.ndarray:
    buffer = _scratch_buffers.get(name)
    if buffer is None or buffer.shape != shape:
        buffer = _scratch_buffers[name] = np.empty(shape, dtype=np.uint8)
    return buffer


def _pixels(rgb: Image) -> np.ndarray:
    """The pixels of RGB image `rgb` as uint8 (height, width, channels), 3 channels or 4.

    Copied once, by Pillow's core paste, into an image mapped onto a reused buffer; a Pillow
    without that mapping or its core paste gets the plain np.asarray copy.
    """
    from PIL import Image as PILImage

    rgb.load()  # an image opened from a file has no pixels (`.im`) before
    width, height = rgb.size
    # Rows an odd number of cache lines apart: the table copy reads 64 rows down a column, and
    # rows a multiple of 4 KB apart (2560 pixels: 10 KB) share cache sets, 2.5x slower.
    lines = -(-4 * width // 64)
    stride = 64 * (lines + 1 - lines % 2)
    buffer = _scratch("pixels", (height, stride))
    try:  # Pillow keeps RGB as 4 bytes a pixel: "RGBX" maps onto our buffer as it is
        mapped = PILImage.frombuffer("RGBX", (width, height), buffer, "raw", "RGBX", stride, 1)
        if not mapped.readonly:  # Pillow copied the buffer instead of mapping it: no use to us
            return np.asarray(rgb)
        mapped.im.paste(rgb.im, (0, 0, width, height))  # the core's paste: Image.paste would copy `mapped`
    except (AttributeError, TypeError, ValueError):
        return np.asarray(rgb)
    return buffer[:, : 4 * width].reshape(height, width, 4)


# Python 3.14 stops counting some references held by local variables, and a free-threaded
# build defers counts: there, getrefcount cannot prove an array unused, so none is reused.
_REFCOUNTS_EXACT = sys.version_info < (3, 14) and getattr(sys, "_is_gil_enabled", lambda: True)()


def _output(shape: tuple[int, ...]) -> np.ndarray:
    """The array for this call's tiles: the last call's again, once nothing else refers to it.

    Every view, tensor or Tiles made from an array holds a reference to it, so an array with
    no other reference than ours (`last`, the global and getrefcount's argument) is unused.
    """
    global _last_output
    last = _last_output
    if _REFCOUNTS_EXACT and last is not None and last.shape == shape and sys.getrefcount(last) == 3:
        return last
    _last_output = np.empty(shape, dtype=np.float32)
    return _last_output


# --- One call ----------------------------------------------------------------------------------


def tile(
    rgb: Image,
    grid: tuple[int, int],
    *,
    thumbnail: bool,
    tile_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> np.ndarray:
    """The float32 (n, 3, tile_size, tile_size) tiles of RGB image `rgb` cut on `grid` (cols, rows),
    row-major, then a thumbnail if `thumbnail`, each channel normalized by `mean` and `std`.

    Runs on this thread and one helper thread (created on first use); while it runs, torch's
    intra-op thread count on this thread is 1, and it is put back before returning. Between
    calls it keeps its buffers and its last output (53 MB for a 1080p screenshot); that output
    array is returned again only once nothing refers to it.
    """
    import torch

    with exclusive():  # one call at a time sets torch's thread count, and uses the buffers
        width, height = rgb.size
        cols, rows = grid
        plan = _plan(width, height, cols, rows, thumbnail, tile_size)
        source = _pixels(rgb)
        tables: dict[bool, np.ndarray] = {}
        copies: list[Callable[[], object]] = []
        for job in plan.resizes:  # the first pass's tables: row i holds source line i along p
            if job.vertical not in tables:
                shape = (job.p_in, 3 * job.q_in + 8)
                table = tables[job.vertical] = _scratch(f"table{int(job.vertical)}", shape)
                table[:, -8:] = _row_bytes(1.0, 0.5 + plan.slack)
                lines = (source.transpose(0, 2, 1) if job.vertical else source.transpose(1, 2, 0))[:, :3]
                rows_of = table[:, :-8].reshape(job.p_in, 3, job.q_in)
                # In pieces of 64 lines along q: each piece's source stays in the cache while it is
                # transposed (2x faster than whole lines), and numpy drops the GIL to copy.
                copies += [partial(np.copyto, rows_of[:, :, q : q + 64], lines[:, :, q : q + 64])
                           for q in range(0, job.q_in, 64)]
        share(copies)
        second = _scratch("second", (plan.rows[-1], tile_size + 8))
        firsts: list[Callable[[], object]] = []
        for n in reversed(range(len(plan.resizes))):  # the thumbnail first: its taps are the longest
            job, part = plan.resizes[n], slice(plan.rows[n], plan.rows[n + 1])
            for channel, (m, s) in enumerate(zip(mean, std, strict=True)):
                scale_bias = _row_bytes(1.0 / (255.0 * s), -m / s)
                second[part, tile_size:].reshape(3, -1, 8)[channel] = scale_bias
            table, chunks = tables[job.vertical], len(job.bags)
            firsts += [partial(_first_pass, plan, job, table, second[part], range(c, min(c + 3, chunks)))
                       for c in range(0, chunks, 3)]
        share(firsts)
        out = _output((len(plan.transposed), 3, tile_size, tile_size))
        second_t, out_t = torch.from_numpy(second), torch.from_numpy(out)
        share([partial(_second_pass, plan, second_t, out_t, t, mean, std) for t in range(len(out))])
        return out
