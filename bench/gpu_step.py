"""One agent step of InternVL3 on a GPU (or the CPU), phase by phase, against a roofline.

A step is what the agent does for every action: a 1920x1080 screenshot tiled for the vision
tower, a short ChatML prompt around its image tokens, and `--new-tokens` generated greedily.
The models are the real architectures (model/architectures.py) with random weights, so no
download is needed; the speed of a step does not depend on the weights' values.

Phases, timed with CUDA events (perf_counter on the CPU):

    preprocess   tile_image on the CPU + the copy of the tiles to the device
    vision       vision tower + pixel shuffle + projector, over every tile
    prefill      the LLM over the whole prompt (image features scattered in), first token out
    decode       the remaining new tokens one at a time, greedy, with a KV cache (ms per token)
    total        vision + prefill + decode, our loop
    generate     model.generate() on the same inputs (min_new_tokens = max_new_tokens), the baseline

A phase's roofline is max(FLOPs / peak FLOP/s, bytes / bandwidth); a step's is the sum of
its phases' ("phases" in the table). FLOPs: the matmuls (2 x Linear weights x tokens) plus
attention (4 x context x width per token and layer, halved under the causal mask in
prefill); bytes: the weights read once plus the KV cache read (decode) or written (prefill).
Efficiency = roofline / measured. The peaks default to an H100 SXM's dense bf16 and HBM3;
pass yours with --peak-flops and --bandwidth (on the CPU, efficiencies mean little).

It needs only torch, transformers (5.x), numpy and, for the screenshot, Pillow (random tiles
of the same shape stand in without it), and imports only model/ modules. Run it from anywhere:

    python bench/gpu_step.py                       # 8b then 2b, bf16, on CUDA
    python bench/gpu_step.py --models 1b --steps 1 --device cpu
"""

from __future__ import annotations

import argparse
import gc
import inspect
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model.architectures import ARCHITECTURES, instantiate_random
from model.preprocess import TILE_SIZE, select_grid, tile_image

PHASES = ("preprocess", "vision", "prefill", "decode/token", "decode", "total", "generate")
VISION_TOKENS_PER_TILE = (TILE_SIZE // 14) ** 2 + 1  # 1024 patches + CLS
IMAGE_TOKENS_PER_TILE = 256


@dataclass(frozen=True)
class Roofline:
    flops: float
    bytes: float

    def ms(self, peak_flops: float, bandwidth: float) -> tuple[float, str]:
        compute, memory = self.flops / peak_flops, self.bytes / bandwidth
        return max(compute, memory) * 1e3, "compute" if compute >= memory else "memory"

    def __add__(self, other: Roofline) -> Roofline:
        return Roofline(self.flops + other.flops, self.bytes + other.bytes)


# --- inputs ----------------------------------------------------------------------------


def screenshot() -> Any:
    """A 1920x1080 synthetic desktop: gradient, a title bar, and a grid of 'windows' and 'buttons'."""
    from PIL import Image

    y, x = np.mgrid[0:1080, 0:1920]
    pixels = np.stack([(x * 255 // 1919), (y * 255 // 1079), ((x + y) * 255 // 2998)], axis=-1).astype(
        np.uint8
    )
    pixels[:40] = (32, 32, 40)
    rng = np.random.default_rng(0)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, 1700)), int(rng.integers(40, 950))
        pixels[y0 : y0 + int(rng.integers(30, 130)), x0 : x0 + int(rng.integers(60, 220))] = rng.integers(
            0, 256, 3
        )
    return Image.fromarray(pixels)


def make_tiles(max_tiles: int) -> Callable[[], np.ndarray]:
    """The preprocessing of one step: the screenshot tiled as the agent does, up to `max_tiles`.

    The grid is InternVL's choice (`select_grid`, like its `max_num`), plus a thumbnail when
    the grid has more than one tile. If tiling fails here (no Pillow, or a torch build without
    the kernels tile_image uses), random tiles of the same shape stand in.
    """
    cols, rows = select_grid(1920, 1080, max_tiles=max_tiles)
    count = cols * rows + (cols * rows > 1)
    try:
        image = screenshot()
        tile_image(image, max_tiles=max_tiles)
    except Exception as error:  # any failure: the rest of the bench still runs
        print(f"tile_image failed ({type(error).__name__}: {error}): random tiles stand in for it")
        values = np.random.default_rng(0).standard_normal((count, 3, TILE_SIZE, TILE_SIZE)).astype(np.float32)
        return lambda: values.copy()
    grid = f"a {cols}x{rows} grid + thumbnail = {count} tiles" if count > 1 else "1 tile"
    print(f"1920x1080 screenshot, max {max_tiles} tiles: {grid}")
    return lambda: tile_image(image, max_tiles=max_tiles).pixel_values


def prompt_ids(num_tiles: int, image_token_id: int, text_tokens: int) -> torch.Tensor:
    """A ChatML-shaped prompt with no tokenizer: text ids around the run of image tokens."""
    rng = np.random.default_rng(1)
    before, after = text_tokens // 2, text_tokens - text_tokens // 2
    text = rng.integers(1000, 100_000, size=text_tokens)
    ids = [*text[:before], *[image_token_id] * (IMAGE_TOKENS_PER_TILE * num_tiles), *text[before:]]
    assert image_token_id not in text and len(ids) == before + after + IMAGE_TOKENS_PER_TILE * num_tiles
    return torch.tensor([ids], dtype=torch.long)


# --- timing ----------------------------------------------------------------------------


class Clock:
    """Milliseconds of a block: CUDA events on a GPU, perf_counter elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def time(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        if not self.cuda:
            start = time.perf_counter()
            result = fn()
            return result, (time.perf_counter() - start) * 1e3
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        result = fn()
        end.record()
        end.synchronize()
        return result, start.elapsed_time(end)


# --- one step --------------------------------------------------------------------------


def _features(output: Any) -> torch.Tensor:
    """get_image_features returns a tensor, a list of them, or an output with pooler_output."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (list, tuple)):
        return torch.cat([t.reshape(-1, t.shape[-1]) for t in output])
    return output.pooler_output


class Stepper:
    """Our greedy loop over a model's parts, and the generate() baseline."""

    def __init__(self, model: Any, image_token_id: int) -> None:
        self.model = model
        self.image_token_id = image_token_id
        self.lm = model.model.language_model
        self.head = model.lm_head
        self.embed = model.get_input_embeddings()
        params = inspect.signature(self.lm.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x

    def new_cache(self) -> Any:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.model.config.text_config)
        except TypeError:  # older releases build it lazily
            return DynamicCache()

    def vision(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return _features(self.model.model.get_image_features(pixel_values=pixel_values))

    def prefill(self, ids: torch.Tensor, features: torch.Tensor, cache: Any) -> torch.Tensor:
        embeds = self.embed(ids)
        mask = (ids == self.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(mask, features.to(embeds.dtype))
        hidden = self.lm(inputs_embeds=embeds, use_cache=True, **{self.cache_kw: cache}).last_hidden_state
        return self.head(hidden[:, -1:]).argmax(-1)

    def decode(self, token: torch.Tensor, cache: Any, steps: int) -> torch.Tensor:
        tokens = [token]
        for _ in range(steps):
            hidden = self.lm(input_ids=tokens[-1], use_cache=True, **{self.cache_kw: cache}).last_hidden_state
            tokens.append(self.head(hidden).argmax(-1))
        return torch.cat(tokens, dim=1)

    def generate(self, ids: torch.Tensor, pixel_values: torch.Tensor, new_tokens: int) -> torch.Tensor:
        from transformers import GenerationConfig

        text = self.model.config.text_config
        config = GenerationConfig(
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=text.eos_token_id,
            pad_token_id=text.pad_token_id,
        )
        out = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values=pixel_values,
            generation_config=config,
        )
        return out[:, ids.shape[1] :]


def run_step(stepper: Stepper, clock: Clock, tiles: Callable[[], np.ndarray], ids: torch.Tensor, args: Any):
    """One step: {phase: ms}, and how many of our tokens agree with generate()'s."""
    device, dtype = args.device, args.dtype
    ms: dict[str, float] = {}
    pixel_values, ms["preprocess"] = clock.time(lambda: torch.from_numpy(tiles()).to(device, dtype))
    features, ms["vision"] = clock.time(lambda: stepper.vision(pixel_values))
    cache = stepper.new_cache()
    first, ms["prefill"] = clock.time(lambda: stepper.prefill(ids, features, cache))
    ours, ms["decode"] = clock.time(lambda: stepper.decode(first, cache, args.new_tokens - 1))
    ms["decode/token"] = ms["decode"] / max(args.new_tokens - 1, 1)
    ms["total"] = ms["vision"] + ms["prefill"] + ms["decode"]
    theirs, ms["generate"] = clock.time(lambda: stepper.generate(ids, pixel_values, args.new_tokens))
    agree = int((ours == theirs).cumprod(dim=1).sum()) if ours.shape == theirs.shape else 0
    return ms, agree


# --- the roofline ----------------------------------------------------------------------


def _linear_weights(module: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


def rooflines(model: Any, num_tiles: int, prompt: int, new_tokens: int, itemsize: int) -> dict[str, Roofline]:
    vit, text = model.config.vision_config, model.config.text_config
    tower, projector = model.model.vision_tower, model.model.multi_modal_projector
    lm, head = model.model.language_model, model.lm_head.weight.numel()

    s = VISION_TOKENS_PER_TILE
    patches = (s - 1) * 2 * sum(p.numel() for p in tower.embeddings.patch_embeddings.parameters())
    vision_flops = (
        num_tiles
        * (2 * _linear_weights(tower) * s + patches + vit.num_hidden_layers * 4 * s * s * vit.hidden_size)
        + 2 * _linear_weights(projector) * IMAGE_TOKENS_PER_TILE * num_tiles
    )
    vision_bytes = sum(p.numel() for p in [*tower.parameters(), *projector.parameters()]) * itemsize

    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    width, kv_width, layers = (
        text.num_attention_heads * head_dim,
        text.num_key_value_heads * head_dim,
        text.num_hidden_layers,
    )
    lm_weights = (sum(p.numel() for p in lm.parameters()) - lm.embed_tokens.weight.numel() + head) * itemsize
    linear = _linear_weights(lm)
    kv_per_token = 2 * layers * kv_width * itemsize  # K and V, every layer

    prefill = Roofline(
        2 * linear * prompt + 2 * head + layers * 2 * prompt * prompt * width,  # causal: half of 4*S^2*d
        lm_weights + kv_per_token * prompt,
    )
    decode = Roofline(0.0, 0.0)
    for step in range(1, new_tokens):
        context = prompt + step
        decode += Roofline(
            2 * (linear + head) + layers * 4 * context * width, lm_weights + kv_per_token * context
        )
    per_token = Roofline(decode.flops / max(new_tokens - 1, 1), decode.bytes / max(new_tokens - 1, 1))
    return {"vision": Roofline(vision_flops, vision_bytes), "prefill": prefill, "decode/token": per_token,
            "decode": decode}  # fmt: skip


# --- main ------------------------------------------------------------------------------


def bench_model(name: str, args: Any, clock: Clock, tiles: Callable[[], np.ndarray]) -> list[tuple]:
    started = time.perf_counter()
    model = instantiate_random(name, device=args.device, dtype=args.dtype, attn_implementation=args.attn)
    built = time.perf_counter() - started
    arch = ARCHITECTURES[name]
    num_tiles = tiles().shape[0]
    ids = prompt_ids(num_tiles, arch.image_token_id, args.prompt_tokens).to(args.device)
    stepper = Stepper(model, arch.image_token_id)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"\n{name}: {params / 1e9:.2f}B params ({arch.vision.name} + {arch.llm.name}), "
        f"built in {built:.1f} s; "
        f"{num_tiles} tile(s), prompt {ids.shape[1]} tokens, {args.new_tokens} new tokens",
        flush=True,
    )
    runs, agreements = [], []
    with torch.inference_mode():
        for index in range(args.steps):
            ms, agree = run_step(stepper, clock, tiles, ids, args)
            runs.append(ms)
            agreements.append(agree)
            label = "warm-up" if index == 0 and args.steps > 1 else f"step {index}"
            print(f"  {label}: total {ms['total']:.0f} ms, generate {ms['generate']:.0f} ms", flush=True)
    measured = runs[1:] if len(runs) > 1 else runs
    median = {phase: statistics.median(run[phase] for run in measured) for phase in PHASES}
    itemsize = torch.finfo(args.dtype).bits // 8
    roofs = rooflines(model, num_tiles, ids.shape[1], args.new_tokens, itemsize)
    bounds = {phase: roof.ms(args.peak_flops, args.bandwidth) for phase, roof in roofs.items()}
    # A step's roofline is the sum of its phases', each under its own bound.
    step_ms = sum(bounds[phase][0] for phase in ("vision", "prefill", "decode"))
    bounds["total"] = bounds["generate"] = (step_ms, "phases")
    rows = []
    for phase in PHASES:
        roof_ms, bound = bounds.get(phase, (None, "host"))
        rows.append(
            (name, phase, median[phase], roof_ms, bound, None if roof_ms is None else roof_ms / median[phase])
        )
    ratio = median["total"] / median["generate"]
    print(
        f"  ours/generate total: {ratio:.2f}; greedy tokens equal to generate's: "
        f"{min(agreements)}/{args.new_tokens} (near-ties between random logits may differ)"
    )
    del model, stepper
    gc.collect()
    if args.device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def print_table(rows: list[tuple]) -> None:
    header = ("model", "phase", "measured ms", "roofline ms", "bound", "efficiency")
    print("\n{:<14} {:<13} {:>12} {:>12} {:>8} {:>11}".format(*header))
    for name, phase, measured, roof, bound, efficiency in rows:
        roof_s = "-" if roof is None else f"{roof:.2f}"
        eff_s = "-" if efficiency is None else f"{efficiency:.1%}"
        print(f"{name:<14} {phase:<13} {measured:>12.2f} {roof_s:>12} {bound:>8} {eff_s:>11}")


def parse_args(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    models_help = "comma-separated: 1b,2b,8b,9b,14b,38b,78b (default 8b,2b on CUDA; 1b on the CPU)"
    parser.add_argument("--models", default=None, help=models_help)
    parser.add_argument("--steps", type=int, default=3, help="steps per model, 1st a warm-up (default 3)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None,
                        help="default bfloat16 on CUDA, float32 on the CPU")  # fmt: skip
    parser.add_argument("--tiles", type=int, default=6, help="max tiles per screenshot, as InternVL's "
                        "max_num: the grid is chosen as the agent does, plus a thumbnail (default 6)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=64, help="text tokens around the image")
    parser.add_argument("--attn", default="sdpa", help="attn_implementation (default sdpa)")
    parser.add_argument("--peak-flops", type=float, default=989e12, help="FLOP/s (default: H100 SXM, bf16)")
    parser.add_argument("--bandwidth", type=float, default=3.35e12, help="bytes/s (default: H100 SXM HBM3)")
    args = parser.parse_args(argv)
    args.device = torch.device(args.device)
    if args.dtype is None:
        args.dtype = torch.bfloat16 if args.device.type == "cuda" else torch.float32
    else:
        args.dtype = getattr(torch, args.dtype)
    if args.models is None:
        args.models = "8b,2b" if args.device.type == "cuda" else "1b"
    names = [f"internvl3-{m.strip().lower().removeprefix('internvl3-')}" for m in args.models.split(",")]
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}: use {', '.join(a[10:] for a in ARCHITECTURES)}")
    args.models = names
    if args.steps < 1 or args.new_tokens < 2 or args.tiles < 1:
        parser.error("need --steps >= 1, --new-tokens >= 2 and --tiles >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    where = (
        torch.cuda.get_device_name(args.device)
        if args.device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"gpu_step: {where}; torch {torch.__version__}, transformers {transformers.__version__}; "
        f"{str(args.dtype).removeprefix('torch.')}, attn {args.attn}; steps {args.steps} "
        f"({'first is warm-up, medians of the rest' if args.steps > 1 else 'one step, no warm-up'}); "
        f"roofline peaks {args.peak_flops / 1e12:.0f} TFLOP/s, {args.bandwidth / 1e12:.2f} TB/s"
    )
    started = time.perf_counter()
    clock, tiles = Clock(args.device), make_tiles(args.tiles)
    rows = [row for name in args.models for row in bench_model(name, args, clock, tiles)]
    print_table(rows)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
