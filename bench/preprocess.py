"""tile_image against transformers' GotOcr2ImageProcessorPil (the reference), in one run.

Both tile the same synthetic screenshots (a UI drawn with PIL plus capture noise, fixed seed)
into InternVL's 448x448 tiles and a thumbnail. Each case alternates the two, after a warm-up,
so that a busy machine slows both alike, and reports median milliseconds. Exits 1 when the
12-tile 1080p speedup is under 4x.

    .venv/bin/python bench/preprocess.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model.preprocess import IMAGENET_MEAN, IMAGENET_STD, tile_image

CASES = [("1920x1080, 12 tiles", 1920, 1080, 12), ("1920x1080, 6 tiles", 1920, 1080, 6),
         ("2560x1440, 12 tiles", 2560, 1440, 12)]
TARGET = 4.0  # for the first case


def screenshot(width: int, height: int, seed: int = 0) -> Image.Image:
    """A desktop-like frame: title bar, sidebar, cards of text with buttons, a photo, noise."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), (246, 247, 249))
    draw = ImageDraw.Draw(image)
    s = width / 1920
    draw.rectangle((0, 0, width, int(56 * s)), fill=(32, 33, 36))
    draw.rectangle((0, int(56 * s), int(280 * s), height), fill=(255, 255, 255))
    for i in range(18):
        draw.text((int(24 * s), int((80 + 44 * i) * s)), f"Navigation item {i}", fill=(60, 64, 67))
    for i in range(24):
        x, y = int((320 + i % 4 * 390) * s), int((90 + i // 4 * 160) * s)
        draw.rounded_rectangle((x, y, x + int(360 * s), y + int(140 * s)), radius=10,
                               fill=(255, 255, 255), outline=(218, 220, 224))
        for line in range(4):
            draw.text((x + 16, y + 14 + 18 * line), f"Card {i}, line {line}: lorem ipsum", fill=(32, 33, 36))
        button = (x + 16, y + int(96 * s), x + int(130 * s), y + int(126 * s))
        draw.rounded_rectangle(button, radius=6, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    pixels = np.asarray(image).astype(np.int16)
    pixels[-height // 4 :, -width // 5 :] = rng.integers(0, 256, (height // 4, width // 5, 3))  # a photo
    pixels += rng.integers(-3, 4, pixels.shape)  # capture and encoding noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def reference(max_tiles: int) -> Callable[[Image.Image], np.ndarray]:
    from transformers import GotOcr2ImageProcessorPil

    processor = GotOcr2ImageProcessorPil(
        crop_to_patches=True, min_patches=1, max_patches=max_tiles, size={"height": 448, "width": 448},
        image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
    )
    return lambda image: processor(image, return_tensors="np")["pixel_values"]


def medians(runs: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median milliseconds of each run, taking turns; two warm-up calls each first."""
    for run in runs:
        run()
        run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, bucket in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) * 1000 for bucket in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per case (10 at least)")
    repeats = max(parser.parse_args().repeats, 10)

    print(f"{'case':<22} {'ours ms':>9} {'baseline ms':>12} {'speedup':>8}")
    speedups = []
    for name, width, height, max_tiles in CASES:
        image, baseline = screenshot(width, height), reference(max_tiles)
        ours, theirs = tile_image(image, max_tiles=max_tiles).pixel_values, baseline(image)
        if ours.shape != theirs.shape:
            print(f"{name}: shapes differ, ours {ours.shape}, baseline {theirs.shape}")
            return 1
        ours_ms, base_ms = medians([lambda i=image, m=max_tiles: tile_image(i, max_tiles=m),
                                    lambda i=image, b=baseline: b(i)], repeats)
        speedups.append(base_ms / ours_ms)
        print(f"{name:<22} {ours_ms:>9.1f} {base_ms:>12.1f} {speedups[-1]:>7.1f}x")
    if speedups[0] < TARGET:
        print(f"FAIL: {CASES[0][0]} is {speedups[0]:.2f}x faster than the baseline; the target is {TARGET}x")
        return 1
    print(f"ok: {CASES[0][0]} is {speedups[0]:.2f}x faster than the baseline (target {TARGET}x), "
          f"medians of {repeats} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
