"""The local backend: an InternVL3 "-hf" checkpoint run by transformers.

We build the prompt ourselves rather than through InternVLProcessor: the processor
would re-tile every image with the slower reference image processor and re-tokenize
thousands of `<IMG_CONTEXT>` strings. The ids are the same as the processor's for
the checkpoint's chat template (tests/integration/test_internvl_model.py checks it):

    <|im_start|>{role}\\n{content}<|im_end|>\\n ... <|im_start|>assistant\\n

where each image in `content` becomes `<img>` + 256*n `<IMG_CONTEXT>` + `</img>` + "\\n"
(n tiles, thumbnail included). torch and transformers are imported inside methods,
so `import model.internvl` stays cheap.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from contextlib import nullcontext
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model.base import Completion, GenerationConfig, Message
from model.catalog import resolve_model
from model.preprocess import tile_image
from tools.errors import ModelUnavailable

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["InternVLModel"]

# Control tokens: text may never produce them, or a web page could end a turn or fake an image.
# The grounding tags (<ref>, <box>, <quad>) are left alone: prompts and answers use them.
_CONTROL_TOKENS = (
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>",
)
_KEEP_ON_DECODE = ("<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>")
_INSTALL_HINT = "pip install 'internvl-agent' (torch and transformers>=5)"


class InternVLModel:
    """A VisionLanguageModel over a loaded InternVLForConditionalGeneration and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str, max_tiles: int = 12) -> None:
        self.name = name
        self.max_tiles = max_tiles
        self._model = model
        self._tokenizer = tokenizer

        vision = model.config.vision_config
        self.tile_size = _first(vision.image_size)
        patches = (self.tile_size // _first(vision.patch_size)) ** 2
        # Pixel shuffle folds each 2x2 patch block into one token: 1024 patches -> 256 tokens.
        self.tokens_per_tile = int(patches * model.config.downsample_ratio**2)

        def token_id(attribute: str, default: str) -> int:
            token = getattr(tokenizer, attribute, None) or default
            return int(tokenizer.convert_tokens_to_ids(token))

        self._start_id = token_id("start_image_token", "<img>")
        self._end_id = token_id("end_image_token", "</img>")
        self._context_id = token_id("context_image_token", "<IMG_CONTEXT>")
        self._stop_id = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
        if self._context_id != model.config.image_token_id:
            raise ModelUnavailable(
                f"{name}: the tokenizer's <IMG_CONTEXT> is id {self._context_id} but the model expects "
                f"{model.config.image_token_id}; the checkpoint folder mixes files of two models"
            )
        pad = tokenizer.pad_token_id
        self._pad_id = int(pad) if pad is not None else self._stop_id
        # Whatever the tokenizer puts before any text (a BOS for some), as the processor would.
        self._prefix_ids: list[int] = list(tokenizer("")["input_ids"])
        keep = {int(tokenizer.convert_tokens_to_ids(t)) for t in _KEEP_ON_DECODE}
        self._skip_on_decode = {
            int(i) for i, token in tokenizer.added_tokens_decoder.items() if token.special
        } - keep
        self._control = re.compile("|".join(re.escape(t) for t in _CONTROL_TOKENS))

    @property
    def tokenizer(self) -> Any:
        """The checkpoint's transformers tokenizer."""
        return self._tokenizer

    @property
    def hf_model(self) -> Any:
        """The underlying InternVLForConditionalGeneration."""
        return self._model

    @property
    def image_token_id(self) -> int:
        """The id of <IMG_CONTEXT>, the placeholder the vision features replace."""
        return self._context_id

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | None = None,
        dtype: Any = None,
        max_tiles: int = 12,
    ) -> InternVLModel:
        """Load "tiny", a short name, a cached hub id or a folder (see model.catalog)."""
        path = resolve_model(name_or_path)
        _check_architecture(path)
        try:
            import torch
            from transformers import AutoTokenizer, InternVLForConditionalGeneration
        except ImportError as exc:
            raise ModelUnavailable(f"the local InternVL backend needs {exc.name}: {_INSTALL_HINT}") from exc

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            # bf16 is what the checkpoints ship in and what GPUs run fast; CPUs want fp32.
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        elif isinstance(dtype, str):
            if not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(f"unknown dtype {dtype!r}: use bfloat16, float16 or float32")
            dtype = getattr(torch, dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            # With accelerate, weights load straight onto the device; without it, via host memory.
            placement = {"device_map": device} if find_spec("accelerate") else {}
            model = InternVLForConditionalGeneration.from_pretrained(
                path, dtype=dtype, attn_implementation="sdpa", **placement
            ).to(device)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelUnavailable(
                f"could not load the model in {path}: {_one_line(exc)}. Check that the folder holds "
                "a complete InternVL3 -hf checkpoint, or use --model tiny"
            ) from exc
        except torch.OutOfMemoryError as exc:
            raise ModelUnavailable(
                f"{name_or_path} does not fit in the memory of {device}: use a smaller model"
            ) from exc
        model.eval()
        return cls(model, tokenizer, name=name_or_path, max_tiles=max_tiles)

    # -- prompt ----------------------------------------------------------------------------

    def build_inputs(self, messages: Sequence[Message]) -> tuple[list[int], np.ndarray | None, int]:
        """Token ids of the ChatML prompt, the stacked image tiles, and the image token count.

        The count covers every token that stands for an image: <img>, </img> and the
        <IMG_CONTEXT> run, so 256*n + 2 per image of n tiles.
        """
        ids = list(self._prefix_ids)
        tiles: list[np.ndarray] = []
        image_tokens = 0
        text = ""  # text is tokenized in runs between special tokens, as the tokenizer itself would

        def flush() -> None:
            nonlocal text
            ids.extend(self._encode(text))
            text = ""

        for message in messages:
            flush()
            ids.append(self._token("<|im_start|>"))
            text = f"{message.role}\n"
            for part in message.content:
                if isinstance(part, str):
                    text += part
                    continue
                flush()
                image = self._tile(part)
                tiles.append(image)
                context = [self._context_id] * (self.tokens_per_tile * len(image))
                span = [self._start_id, *context, self._end_id]
                ids.extend(span)
                image_tokens += len(span)
                text = "\n"
            flush()
            ids.append(self._stop_id)
            text = "\n"
        flush()
        ids.append(self._token("<|im_start|>"))
        ids.extend(self._encode("assistant\n"))
        pixel_values = np.concatenate(tiles) if tiles else None
        return ids, pixel_values, image_tokens

    def _tile(self, image: Image) -> np.ndarray:
        return tile_image(image, max_tiles=self.max_tiles, tile_size=self.tile_size).pixel_values

    def _token(self, token: str) -> int:
        return int(self._tokenizer.convert_tokens_to_ids(token))

    def _encode(self, text: str) -> list[int]:
        """Ids of plain text; a control token written in the text is spelled out, not obeyed."""
        if not text:
            return []
        out: list[int] = []
        position = 0
        for match in self._control.finditer(text):
            out += self._tokenizer(text[position : match.start()], add_special_tokens=False)["input_ids"]
            out += self._tokenizer(match.group(), add_special_tokens=False, split_special_tokens=True)[
                "input_ids"
            ]
            position = match.end()
        out += self._tokenizer(text[position:], add_special_tokens=False)["input_ids"]
        return out

    # -- generation ------------------------------------------------------------------------

    def generate(self, messages: Sequence[Message], config: GenerationConfig | None = None) -> Completion:
        """Greedy by default; samples when `config.temperature` > 0. Stops at <|im_end|>.

        `output_tokens` counts every generated token, the closing <|im_end|> included. The
        text keeps grounding tags (<ref>, <box>) and drops the other special tokens.
        """
        import torch
        from transformers import GenerationConfig as HFGenerationConfig

        config = config or GenerationConfig()
        started = time.perf_counter()
        ids, pixel_values, image_tokens = self.build_inputs(messages)
        prepared = time.perf_counter()

        device = self._model.device
        inputs: dict[str, Any] = {
            "input_ids": torch.tensor([ids], device=device),
            "attention_mask": torch.ones((1, len(ids)), dtype=torch.long, device=device),
        }
        if pixel_values is not None:
            inputs["pixel_values"] = torch.from_numpy(pixel_values).to(device=device, dtype=self._model.dtype)
        sampling = config.temperature > 0
        # A fresh config: the checkpoint's own defaults (sampling settings) must not leak in.
        hf_config = HFGenerationConfig(
            max_new_tokens=config.max_new_tokens,
            do_sample=sampling,
            temperature=config.temperature if sampling else None,
            top_p=config.top_p if sampling else None,
            eos_token_id=self._stop_id,
            pad_token_id=self._pad_id,
        )
        # A seed applies to this call only: the caller's RNG state is restored afterwards.
        seeded = config.seed is not None and sampling
        devices = [device] if device.type == "cuda" else []
        rng = torch.random.fork_rng(devices=devices) if seeded else nullcontext()
        try:
            with rng, torch.inference_mode():
                if seeded:
                    torch.manual_seed(config.seed)
                output = self._model.generate(**inputs, generation_config=hf_config)
        except torch.OutOfMemoryError as exc:
            raise ModelUnavailable(
                f"{self.name} ran out of memory on {device} for a {len(ids)}-token prompt: "
                "lower max_tiles, send smaller screenshots, or use a smaller model"
            ) from exc
        new = output[0, len(ids) :].tolist()
        stopped = self._stop_id in new
        answer = new[: new.index(self._stop_id)] if stopped else new
        text = self._tokenizer.decode(
            [t for t in answer if t not in self._skip_on_decode], skip_special_tokens=False
        )
        finished = time.perf_counter()
        return Completion(
            text=text,
            prompt_tokens=len(ids),
            image_tokens=image_tokens,
            output_tokens=len(new),
            total_ms=(finished - started) * 1000,
            extra={
                "finish_reason": "stop" if stopped else "length",
                "preprocess_ms": (prepared - started) * 1000,
                "num_tiles": 0 if pixel_values is None else int(pixel_values.shape[0]),
            },
        )


def _first(value: int | Sequence[int]) -> int:
    return int(value if isinstance(value, int) else value[0])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_architecture(path: Path) -> None:
    """Refuse, with a way out, the original remote-code checkpoints before transformers chokes."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot read {path / 'config.json'}: {_one_line(exc)}") from exc
    model_type = config.get("model_type")
    if model_type != "internvl":
        raise ModelUnavailable(
            f"{path} holds a {model_type!r} model, not an InternVL3 -hf checkpoint (model_type 'internvl'). "
            "Use an OpenGVLab/InternVL3-*-hf checkpoint here, or serve the original one with LMDeploy "
            "or vLLM and use the remote backend"
        )
