"""One agent step through InternVLModel, with the tile and prefix caches (model/cache.py) and without.

    python bench/model_step.py                       # InternVL3-1B, random weights, fp32, 2 threads
    python bench/model_step.py --device cuda         # bf16 on the GPU
    python bench/model_step.py --model tiny --steps 2 --new-tokens 2   # seconds, for a smoke test

The model is the InternVL3-1B architecture with random weights (model/architectures.py),
driven through InternVLModel.generate with the tiny checkpoint's tokenizer (its
<IMG_CONTEXT> id is written into the model's config): every kernel of a real step runs,
and only the words are nonsense. The screenshots are real Chromium shots of one local
page (tools/browser), or, where Playwright is missing, synthetic ones (said so).

Rows, each the median over `--steps` steps:
- unchanged screen: the same screenshot again, with both caches against neither (first token);
- one widget changed: the page's button says something new at every step (first token);
- best-of-4: four sampled candidates from one batched generate (one prefill, the KV cache
  repeated per sample) against a single sample, both with the caches on, time to the last
  token; its ratio is what the four cost over one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SYSTEM = (
    "You operate a web browser to reach the user's goal. Look at the screenshot and reply "
    "with exactly one action as a tool call.\n"
    + "\n".join(
        f"- {name}: {doc}"
        for name, doc in (
            ("click", '{"x": int, "y": int, "button": "left|right|middle", "clicks": 1..3}'),
            ("move", '{"x": int, "y": int} or {"target": str}'),
            ("drag", '{"start": point|target, "end": point|target}'),
            ("scroll", '{"x": int, "y": int, "dx": int, "dy": int} in wheel notches'),
            ("type", '{"text": str, "target": str?, "submit": bool, "secret": bool}'),
            ("key", '{"keys": ["ctrl", "s"]} with canonical key names'),
            ("wait", '{"seconds": float} bounded'),
            ("navigate", '{"url": str} (browser only)'),
            ("back", "{}"),
            ("finish", '{"answer": str?}'),
            ("fail", '{"reason": str}'),
        )
    )
    + "\nCoordinates are integers 0..1000 relative to the screenshot. "
    'Write <tool_call>{"name": ..., "arguments": {...}}</tool_call>.'
)

PAGE = """<!doctype html><html><body style="margin:0;font:16px sans-serif;background:#fafafa">
<div style="height:48px;background:#283040;color:white;padding:12px">Settings - Example app</div>
<button id="status" style="position:absolute;left:60px;top:90px;width:140px;height:34px">Ready</button>
<h2 style="position:absolute;left:420px;top:160px">Account</h2>
<label style="position:absolute;left:420px;top:240px">Name <input value="Ada Lovelace"></label>
<label style="position:absolute;left:420px;top:290px">Email <input value="ada@example.com"></label>
<p style="position:absolute;left:820px;top:520px;width:360px">Changes are saved when you press Save.
Your data stays on this machine.</p>
<button style="position:absolute;left:420px;top:360px">Save</button>
</body></html>"""


def screenshots(count: int) -> tuple[list[Any], str]:
    """The page once, then `count` shots each with the button's label changed: real or synthetic."""
    try:
        from tests.helpers.http import serving_folder
        from tools.browser import BrowserExecutor

        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "index.html").write_text(PAGE)
            with (
                serving_folder(Path(folder)) as url,
                BrowserExecutor(start_url=f"{url}/index.html") as browser,
            ):
                shots = [browser.observe().image]
                for k in range(count):
                    browser.page.evaluate(f"document.getElementById('status').textContent = 'Saved {k + 1}'")
                    shots.append(browser.observe().image)
        return shots, "Chromium screenshots (1280x720) of a local page"
    except Exception as error:  # no Playwright, no Chromium: synthetic shots stand in
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}"
        return synthetic(count), f"SYNTHETIC screenshots (1280x720): no browser here ({reason})"


def synthetic(count: int) -> list[Any]:
    from PIL import Image, ImageDraw

    base = Image.new("RGB", (1280, 720), (250, 250, 250))
    draw = ImageDraw.Draw(base)
    draw.rectangle((0, 0, 1280, 48), fill=(40, 48, 64))
    for i, (x, y, w) in enumerate(((420, 160, 200), (420, 240, 300), (420, 290, 300), (820, 520, 360))):
        draw.rectangle((x, y, x + w, y + 28), outline=(90, 90, 90))
        draw.text((x + 6, y + 6), f"field {i}", fill=(20, 20, 20))
    shots = []
    for k in range(count + 1):
        shot = base.copy()
        d = ImageDraw.Draw(shot)
        d.rectangle((60, 90, 200, 124), fill=(230, 230, 230), outline=(80, 80, 80))
        d.text((70, 100), "Ready" if k == 0 else f"Saved {k}", fill=(0, 0, 0))
        shots.append(shot)
    return shots


def build(args: Any) -> tuple[Any, Any]:
    """Two InternVLModels over one set of weights: both caches on, and both off."""
    import torch
    from transformers import AutoTokenizer

    from model.architectures import instantiate_random
    from model.internvl import InternVLModel
    from model.tiny import tiny_checkpoint

    if args.model == "tiny":
        cached = InternVLModel.from_pretrained("tiny", device=str(args.device), max_tiles=args.tiles)
        model, tokenizer = cached.hf_model, cached.tokenizer
    else:
        tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint())
        model = instantiate_random(args.model, device=args.device, dtype=args.dtype)
        model.config.image_token_id = int(tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"))
        cached = InternVLModel(model, tokenizer, name=args.model, max_tiles=args.tiles)
    plain = InternVLModel(
        model, tokenizer, name=args.model, max_tiles=args.tiles, tile_cache_mb=0, prefix_cache=False
    )
    torch.manual_seed(0)
    return cached, plain


def ttft(vlm: Any, image: Any, args: Any) -> tuple[float, Any]:
    from model.base import GenerationConfig, Message

    messages = [
        Message.system(SYSTEM),
        Message.user(image, "Goal: save the settings. What is the next action?"),
    ]
    if args.device.type == "cuda":
        import torch

        torch.cuda.synchronize()
    completion = vlm.generate(messages, GenerationConfig(max_new_tokens=args.new_tokens))
    return completion.ttft_ms, completion


def last_token(vlm: Any, image: Any, args: Any, n: int, seed: int) -> tuple[float, Any]:
    """Time to the last token of `n` samples at temperature 0.7 (Best-of-N's default)."""
    from model.base import GenerationConfig, Message

    messages = [
        Message.system(SYSTEM),
        Message.user(image, "Goal: save the settings. What is the next action?"),
    ]
    config = GenerationConfig(max_new_tokens=args.new_tokens, temperature=0.7, n=n, seed=seed)
    started = time.perf_counter()
    completion = vlm.generate(messages, config)  # its tokens are read back to the CPU: synchronized
    return (time.perf_counter() - started) * 1000, completion


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if args.device.type == "cpu":
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    shots, source = screenshots(args.steps)
    cached, plain = build(args)
    where = (
        torch.cuda.get_device_name(args.device)
        if args.device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"model_step: {args.model} (random weights), {str(args.dtype).removeprefix('torch.')}, {where}; "
        f"torch {torch.__version__}, transformers {transformers.__version__}\n{source}; "
        f"{args.steps} step(s) per row, {args.new_tokens} new tokens, max {args.tiles} tiles",
        flush=True,
    )
    first, changed = shots[0], shots[1:]
    _, warm = ttft(cached, first, args)  # fills both caches (and warms the kernels)
    ttft(plain, first, args)
    print(
        f"  prompt {warm.prompt_tokens} tokens ({warm.image_tokens} image, {warm.extra['num_tiles']} tiles); "
        f"first cached step computed {warm.extra['tiles_computed']} tile(s)",
        flush=True,
    )
    # Best-of-4 against one sample, on the unchanged screen with the caches warm, taking turns.
    one, four, tokens = [], [], []
    for k in range(args.steps):
        one.append(last_token(cached, first, args, 1, seed=k)[0])
        ms, completion = last_token(cached, first, args, 4, seed=k)
        four.append(ms)
        tokens.append(completion.extra["candidate_tokens"])
        print(f"  best-of-4, step {k + 1}: 1 sample {one[-1]:.0f} ms, 4 samples {ms:.0f} ms", flush=True)
    rows: list[tuple[str, float, float, str]] = []
    # The two models take turns, so a change in the machine's load hits both alike.
    neither, both, extras = [], [], []
    for _ in range(args.steps):
        neither.append(ttft(plain, first, args)[0])
        ms, completion = ttft(cached, first, args)
        both.append(ms)
        extras.append(completion.extra)
        print(f"  unchanged screen: neither {neither[-1]:.0f} ms, both caches {ms:.0f} ms", flush=True)
    rows.append(("unchanged screen", statistics.median(neither), statistics.median(both), _saved(extras)))
    base, fast, extras = [], [], []
    for shot in changed:
        base.append(ttft(plain, shot, args)[0])
        ms, completion = ttft(cached, shot, args)
        fast.append(ms)
        extras.append(completion.extra)
        print(f"  one widget changed: neither {base[-1]:.0f} ms, both caches {ms:.0f} ms", flush=True)
    rows.append(("one widget changed", statistics.median(base), statistics.median(fast), _saved(extras)))
    print(f"\n{'step':<20} {'neither (ms)':>13} {'both caches (ms)':>17} {'ratio':>7}  caches")
    for name, slow_ms, fast_ms, saved in rows:
        print(f"{name:<20} {slow_ms:>13.0f} {fast_ms:>17.0f} {slow_ms / fast_ms:>6.2f}x  {saved}")
    one_ms, four_ms = statistics.median(one), statistics.median(four)
    print(f"{'':<20} {'1 sample (ms)':>13} {'4 samples (ms)':>17} {'cost':>7}")
    print(
        f"{'best-of-4':<20} {one_ms:>13.0f} {four_ms:>17.0f} {four_ms / one_ms:>6.2f}x  "
        f"time to the last token, one batched generate; tokens per sample {list(tokens[-1])}"
    )
    print(
        f"\nmedians over {args.steps} step(s): first token for the cache rows, last token for best-of-4; "
        f"wall time {time.perf_counter() - started:.0f} s"
    )


def _saved(extras: list[dict]) -> str:
    last = extras[-1]
    return (
        f"tiles {last['tiles_computed']} computed / {last['tiles_reused']} reused, "
        f"prefix {last['prefix_tokens_reused']} tokens reused"
    )


def parse_args(argv: list[str] | None = None) -> Any:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="internvl3-1b", help="an architecture (model/architectures.py) or tiny"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None,
                        help="default bfloat16 on CUDA, float32 on the CPU")  # fmt: skip
    parser.add_argument("--steps", type=int, default=2, help="timed steps per row (default 2)")
    parser.add_argument("--new-tokens", type=int, default=4, help="tokens to generate (default 4)")
    parser.add_argument(
        "--tiles", type=int, default=6, help="max tiles per screenshot (default 6: 2 + thumbnail at 1280x720)"
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    args = parser.parse_args(argv)
    args.device = torch.device(args.device)
    if args.dtype is None:
        args.dtype = torch.bfloat16 if args.device.type == "cuda" else torch.float32
    else:
        args.dtype = getattr(torch, args.dtype)
    if args.steps < 1 or args.new_tokens < 1 or args.tiles < 1:
        parser.error("need --steps, --new-tokens and --tiles >= 1")
    return args


if __name__ == "__main__":
    main()
