"""A tiny random-weight InternVL3 checkpoint, built offline in seconds.

Tests and demos need a checkpoint that transformers loads through the very same
classes as `OpenGVLab/InternVL3-*-hf` (InternVLForConditionalGeneration, a Qwen2
tokenizer, InternVLProcessor), without a download. So we build one: a byte-level BPE
tokenizer trained on a small built-in corpus, the -hf special tokens and chat
template, and a model whose vision tower keeps the real geometry (448 px tiles,
14 px patches, pixel shuffle 0.5, so 256 tokens per tile) but is a few kB wide.

The weights are random: the model speaks nonsense, but every shape, token and code
path is the real one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

__all__ = ["TINY_NAME", "cache_root", "tiny_checkpoint"]

# Bump the version whenever the recipe changes, so a stale cached build is never reused.
TINY_NAME = "tiny-internvl3-v1"
SEED = 20250101
VOCAB_SIZE = 4096

# The -hf checkpoints' special tokens, in their relative order.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    "<video>",
)
# Named tokens InternVLProcessor reads off the tokenizer (tokenizer.start_image_token, ...).
EXTRA_SPECIAL_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
# The chat template of the InternVL3 -hf checkpoints: an image becomes "<IMG_CONTEXT>\n",
# which the processor then expands to <img> + 256*n <IMG_CONTEXT> + </img>.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\\n' }}{% endif %}"
)
# Qwen2's pre-tokenizer split, so transformers' Qwen2Tokenizer rebuilds the same pipeline.
QWEN2_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)

_PROSE = """\
You are a helpful assistant that operates a computer. Look at the screenshot, think about the goal,
and answer with exactly one action. The page shows a login form with a username field, a password
field and a blue Submit button. Click the search box, type the query and press Enter to see results.
Scroll down until the Settings link is visible, then open it in the same tab. The dialog asks whether
to save changes; choose Save unless the user said otherwise. If the task is already done, finish and
report the answer. If the goal cannot be reached, fail and say why in one sentence.
Please provide the bounding box coordinate of the region this sentence describes.
The quick brown fox jumps over the lazy dog while the window title reads Untitled Document.
A menu bar runs along the top of the screen with File, Edit, View, Window and Help menus.
The browser loaded the example page; the address bar shows the current URL and the tab title.
Select the checkbox next to "Remember me", then click "Sign in". Wait two seconds for the page.
Drag the slider to the right, move the mouse over the image, and double click the file icon.
Copy the text with ctrl c, paste it with ctrl v, undo with ctrl z, and save the file with ctrl s.
The table lists names, dates, prices and quantities; sort it by the second column and read the total.
Welcome back! Your order has shipped. Track it from the Orders page or contact support for help.
Error: the email address is not valid. Enter an address such as name@example.com and try again.
"""
_WORDS = """
button link field box menu tab window page dialog icon image text title header footer list item row column
cell table form input label checkbox radio slider toolbar sidebar panel card modal popup tooltip banner
search submit cancel save open close next back home settings profile login logout email password account
name user cart order price total date time file folder document report results message notification
the a an of to in on at for with from by and or not is are was were be been this that it its these those
red blue green yellow orange purple black white gray dark light bold italic underline font size color
left right top bottom center middle first second third last new old small large primary secondary
click press type scroll drag drop move hover select choose enter write read find show hide toggle expand
collapse refresh reload download upload share copy paste cut undo redo delete remove add create edit
update rename sort filter zoom print export import install uninstall enable disable start stop pause
play mute volume screen display monitor keyboard mouse cursor pointer touch swipe tap hold release wait
goal task step action answer reason done finish fail error warning success info help support contact
about privacy terms policy cookie accept decline agree continue skip retry confirm apply reset clear
browser address bar url website web site online offline network connection server request response
calendar event meeting reminder alarm clock timer weather map location route direction distance city
country street phone number mobile desktop laptop tablet device system application app program tool
editor terminal console command shell script code function variable value string integer boolean list
python java javascript html css json yaml xml markdown query database record field key index view
shopping product category brand review rating star comment like follow subscribe post reply send inbox
draft spam trash archive label attachment subject recipient sender body signature forward compose
photo video music song album artist playlist movie show episode channel stream live news article story
price discount coupon payment card credit debit checkout shipping delivery address billing invoice
username login register signup forgot remember keep stay signed verify code captcha robot human
please thank you sorry hello welcome goodbye yes no maybe ok okay sure great good bad best better
should would could can will may might must need want like know think see look find give take make get
one two three four five six seven eight nine ten hundred thousand million percent half quarter
today tomorrow yesterday morning afternoon evening night week month year hour minute second day
january february march april may june july august september october november december monday friday
""".split()
_ACTIONS = ("click", "double_click", "move", "scroll", "type", "key", "wait", "navigate", "finish", "fail")
_KEYS = ("enter", "tab", "escape", "backspace", "ctrl", "shift", "alt", "cmd", "up", "down", "pagedown")


def _word(rng: random.Random) -> str:
    """A word in one of the shapes real text has, so BPE learns more than one spelling."""
    word = rng.choice(_WORDS)
    shape = rng.randrange(8)
    if shape == 0:
        return word.capitalize()
    if shape == 1:
        return word + ("s" if not word.endswith("s") else "es")
    if shape == 2:
        return word.rstrip("e") + "ing"
    if shape == 3:
        return word.rstrip("e") + "ed"
    if shape == 4:
        return word.upper()
    return word


def _corpus(rng: random.Random) -> list[str]:
    """English prose plus the action, JSON and grounding text an agent model emits."""
    lines = _PROSE.splitlines()
    for _ in range(6000):
        words = " ".join(_word(rng) for _ in range(rng.randint(3, 12)))
        x, y, x2, y2 = (rng.randint(0, 1000) for _ in range(4))
        name = rng.choice(_ACTIONS)
        kind = rng.randrange(7)
        if kind <= 1:
            lines.append(words.capitalize() + rng.choice(".?!:;,"))
        elif kind == 2:
            args = json.dumps({"x": x, "y": y, "target": words})
            lines.append(f'<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>')
        elif kind == 3:
            lines.append(json.dumps({"action": name, "text": words, "keys": rng.sample(_KEYS, 2)}))
        elif kind == 4:
            lines.append(f'{name}(x={x}, y={y})  # {words}\ntype(text="{words}", submit=True)')
        elif kind == 5:
            lines.append(f"<ref>{words}</ref><box>[[{x}, {y}, {x2}, {y2}]]</box>")
        else:
            lines.append(f'```json\n{{\n  "action": "{name}",\n  "point": [{x}, {y}]\n}}\n```')
    return lines


def cache_root() -> Path:
    """$INTERNVL_AGENT_CACHE, else $XDG_CACHE_HOME/internvl-agent, else ~/.cache/internvl-agent."""
    if env := os.environ.get("INTERNVL_AGENT_CACHE"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "internvl-agent"


def tiny_checkpoint(cache_dir: Path | None = None) -> Path:
    """Return the tiny checkpoint's directory, building it once into `cache_dir` (default `cache_root()`)."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    final = root / TINY_NAME
    # The directory only ever appears by an atomic rename of a finished build.
    if (final / "config.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{TINY_NAME}-", dir=root))
    try:
        _build(staging)
        try:
            staging.rename(final)
        except OSError:
            # Another process finished first; its build is identical (fixed seed).
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _build_tokenizer(out: Path) -> None:
    """Train the BPE tokenizer and save it the way the -hf checkpoints do."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=VOCAB_SIZE - len(SPECIAL_TOKENS),
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(random.Random(SEED)), trainer=trainer)
    # Special tokens go after the learned vocabulary, as in Qwen2's.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens=EXTRA_SPECIAL_TOKENS,
        model_max_length=8192,
        return_token_type_ids=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    # Write it as the -hf checkpoints do: their tokenizer class, and the named image tokens
    # as an `extra_special_tokens` mapping, so loading takes the same path as a real one.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in EXTRA_SPECIAL_TOKENS:
        cfg.pop(key, None)
    cfg["extra_special_tokens"] = EXTRA_SPECIAL_TOKENS
    cfg["tokenizer_class"] = "Qwen2Tokenizer"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def _write_processor_configs(out: Path) -> None:
    """What InternVLProcessor.from_pretrained reads: the image processor and the processor."""
    image = {
        "image_processor_type": "GotOcr2ImageProcessor",
        "processor_class": "InternVLProcessor",
        "crop_to_patches": True,
        "min_patches": 1,
        "max_patches": 12,
        "size": {"height": 448, "width": 448},
        "resample": 3,  # bicubic
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "do_convert_rgb": True,
    }
    processor = {"processor_class": "InternVLProcessor", "image_seq_length": 256}
    (out / "preprocessor_config.json").write_text(json.dumps(image, indent=2) + "\n")
    (out / "processor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)


def _build(out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, InternVLConfig, InternVLForConditionalGeneration
    from transformers.utils import logging as hf_logging

    _build_tokenizer(out)
    # Read the ids back through transformers, as a user of the checkpoint will.
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = InternVLConfig(
        vision_config={
            # The real geometry: 448/14 = 32x32 patches, pixel-shuffled to 256 tokens a tile.
            "image_size": 448,
            "patch_size": 14,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 8192,
            "tie_word_embeddings": True,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.context_image_token_id,
        image_seq_length=256,
        downsample_ratio=0.5,
        tie_word_embeddings=True,
    )
    config.architectures = ["InternVLForConditionalGeneration"]
    # Seed a private generator state so building never disturbs the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = InternVLForConditionalGeneration(config)
    # A one-shard save needs no progress bar on the user's terminal.
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    _write_processor_configs(out)
