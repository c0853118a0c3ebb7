"""The local backend: an InternVL3 "-hf" checkpoint run by transformers.

    vlm = InternVLModel.from_pretrained("internvl3-8b", device_map="auto")   # or num_gpus=2,
    vlm.generate(messages, GenerationConfig(...))                            # quantization="4bit"
    vlm.stream(messages)              # the same reply, in text pieces
    vlm.generate_batch([conv1, conv2])   # several conversations, one left-padded batch

Messages are our `Message`s or OpenAI-style dicts (model.messages). The prompt is built
in model.prompting, loading lives in model.loading and model.placement, and decoding
helpers in model.generation. torch and transformers are imported inside methods, so
`import model.internvl` stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, replace
from threading import Event
from typing import TYPE_CHECKING, Any

import numpy as np

from model.base import Completion, GenerationConfig
from model.cache import Prefiller, PrefixCache, TileCache
from model.catalog import resolve_model
from model.generation import TextPieces, TokenClock, cancel_criteria, left_padded, run_streaming
from model.loading import Quantization, check_architecture, check_quantization, load
from model.messages import MessageLike, as_messages
from model.preprocess import tile_image
from model.prompting import Prompt, PromptBuilder
from tools.errors import ModelUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL.Image import Image

__all__ = ["InternVLModel"]

# Special tokens that stay in the reply's text: grounding answers are written with them.
_KEEP_ON_DECODE = ("<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>")


@dataclass(frozen=True)
class _Decoded:
    """generate's new tokens for each output row, and when the first of them came."""

    rows: list[list[int]]
    copies: int  # output rows per prompt
    first_token_at: float | None
    saved: dict[str, int]  # what the caches saved: tiles_computed, tiles_reused, prefix_tokens_reused


class InternVLModel:
    """A VisionLanguageModel over a loaded InternVLForConditionalGeneration and its tokenizer."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        max_tiles: int = 12,
        tile_cache_mb: float = 256,
        prefix_cache: bool = True,
    ) -> None:
        self.name = name
        self.max_tiles = max_tiles
        self._model = model
        self._tokenizer = tokenizer

        vision = model.config.vision_config
        self.tile_size = _first(vision.image_size)
        patches = (self.tile_size // _first(vision.patch_size)) ** 2
        # Pixel shuffle folds each 2x2 patch block into one token: 1024 patches -> 256 tokens.
        self.tokens_per_tile = int(patches * model.config.downsample_ratio**2)
        self._prompts = PromptBuilder(tokenizer, tokens_per_tile=self.tokens_per_tile, tile=self._tile)
        self._stop_id = self._prompts.stop_id
        if self._prompts.context_id != model.config.image_token_id:
            raise ModelUnavailable(
                f"{name}: the tokenizer's <IMG_CONTEXT> is id {self._prompts.context_id} but the model "
                f"expects {model.config.image_token_id}; the checkpoint folder mixes files of two models"
            )
        pad = tokenizer.pad_token_id
        self._pad_id = int(pad) if pad is not None else self._stop_id
        # generate fills every setting a call leaves unset from model.generation_config: a
        # clean one keeps the checkpoint's sampling defaults (top_k, repetition_penalty) out.
        from transformers import GenerationConfig as HFGenerationConfig

        model.generation_config = HFGenerationConfig(eos_token_id=self._stop_id, pad_token_id=self._pad_id)
        keep = {self._prompts.token(t) for t in _KEEP_ON_DECODE}
        self._skip_on_decode = {
            int(i) for i, token in tokenizer.added_tokens_decoder.items() if token.special
        } - keep
        # model.cache: vision features per tile (0 MB turns it off) and the system prompt's KV.
        self._prefiller: Prefiller | None = None
        if tile_cache_mb > 0 or prefix_cache:
            self._prefiller = Prefiller(
                model,
                tiles=TileCache(int(tile_cache_mb * 2**20)) if tile_cache_mb > 0 else None,
                prefixes=PrefixCache() if prefix_cache else None,
            )
        # Who prefills one prompt for n samples and for answer_logprobs: the caches, or none.
        self._one_prompt = self._prefiller or Prefiller(model, tiles=None, prefixes=None)

    @property
    def caches(self) -> Prefiller | None:
        """The tile and prefix caches (model.cache), or None when both are off."""
        return self._prefiller

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
        return self._prompts.context_id

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str | None = None, dtype: Any = None,
                        max_tiles: int = 12, device_map: str | Mapping[str, Any] | None = None,
                        num_gpus: int | None = None,
                        quantization: Quantization | None = None, attn_implementation: str | None = None,
                        tile_cache_mb: float = 256, prefix_cache: bool = True) -> InternVLModel:
        """Load "tiny", a short name, a cached hub id or a folder (see model.catalog).

        One device by default: `device`, else the first GPU, else the CPU, in bf16 on a GPU
        and fp32 on the CPU. `device_map="auto"` spreads the model over every GPU when
        there are several, `num_gpus=k` over the first k (model.placement), and a dict is
        used as given. `quantization="8bit"` or `"4bit"` loads the decoder's weights
        through bitsandbytes (CUDA only). Attention is FlashAttention-2 on a GPU when
        flash_attn is installed, else SDPA, unless `attn_implementation` says otherwise.
        `tile_cache_mb` bounds the vision-tile cache (0 turns it off), and `prefix_cache`
        keeps the system prompt's KV cache between calls (model.cache).
        """
        check_quantization(quantization)
        path = resolve_model(name_or_path)
        check_architecture(path)
        model, tokenizer = load(path, device=device, dtype=dtype, device_map=device_map, num_gpus=num_gpus,
                                quantization=quantization, attn_implementation=attn_implementation)
        return cls(model, tokenizer, name=name_or_path, max_tiles=max_tiles, tile_cache_mb=tile_cache_mb,
                   prefix_cache=prefix_cache)

    # -- prompt ----------------------------------------------------------------------------

    def build_inputs(
        self, messages: Sequence[MessageLike], *, keep_images: int | None = None
    ) -> tuple[list[int], np.ndarray | None, int]:
        """Token ids of the ChatML prompt, the stacked image tiles, and the image token count.

        The count covers every token that stands for an image: <img>, </img> and the
        <IMG_CONTEXT> run, so 256*n + 2 per image of n tiles. `keep_images` keeps only
        the newest images (model.prompting).
        """
        prompt = self._prompts.build(as_messages(messages), keep_images=keep_images)
        return prompt.ids, prompt.pixel_values, prompt.image_tokens

    def _tile(self, image: Image) -> np.ndarray:
        return tile_image(image, max_tiles=self.max_tiles, tile_size=self.tile_size).pixel_values

    # -- generation ------------------------------------------------------------------------

    def generate(self, messages: Sequence[MessageLike], config: GenerationConfig | None = None) -> Completion:
        """Greedy by default; samples when `config.temperature` > 0. Stops at <|im_end|>.

        `output_tokens` counts every generated token, the closing <|im_end|> included. The
        text keeps grounding tags (<ref>, <box>) and drops the other special tokens.
        With `config.n` > 1 and sampling, the completion holds n candidates from one batched
        generate: the prompt is prefilled once (through the caches, or without them when they
        are off) and its KV cache repeated for each sample. Greedy candidates are n copies of one.
        """
        return self.generate_batch([messages], config)[0]

    def generate_batch(
        self, conversations: Sequence[Sequence[MessageLike]], config: GenerationConfig | None = None
    ) -> list[Completion]:
        """One completion per conversation, decoded together in one left-padded batch.

        Greedy replies are those of one call per conversation. Every completion reports
        the batch's own times (ttft_ms, total_ms).
        """
        config = config or GenerationConfig()
        started = time.perf_counter()
        prompts = [self._prompts.build(as_messages(c), keep_images=config.keep_images) for c in conversations]
        if not prompts:
            return []
        prepared = time.perf_counter()
        decoded = self._decode(prompts, config)
        finished = time.perf_counter()
        ttft_ms = 0.0 if decoded.first_token_at is None else (decoded.first_token_at - started) * 1000
        completions = []
        for i, prompt in enumerate(prompts):
            rows = decoded.rows[i * decoded.copies : (i + 1) * decoded.copies]
            replies = [self._reply(row) for row in rows] * (config.n // decoded.copies)
            completions.append(
                Completion(
                    text=replies[0][0],
                    candidates=tuple(text for text, _, _ in replies),
                    prompt_tokens=len(prompt.ids),
                    image_tokens=prompt.image_tokens,
                    output_tokens=sum(count for _, count, _ in replies),
                    total_ms=(finished - started) * 1000,
                    ttft_ms=ttft_ms,
                    extra={
                        "finish_reason": replies[0][2],
                        "finish_reasons": tuple(reason for _, _, reason in replies),
                        "candidate_tokens": tuple(count for _, count, _ in replies),
                        "preprocess_ms": (prepared - started) * 1000,
                        "num_tiles": prompt.num_tiles,
                        "batch_size": len(prompts),
                        **decoded.saved,
                    },
                )
            )
        return completions

    def answer_logprobs(self, messages: Sequence[MessageLike], answers: Sequence[str]) -> dict[str, float]:
        """The log-probability that the reply starts with each answer: one forward pass.

        An answer is scored by its first token ("Yes" and "No" are one token each), so the
        answers must start with different tokens. The prompt goes through the caches as in
        generate, and the logits are those of transformers' own forward pass.
        """
        tokens = [self._prompts.encode(answer)[:1] for answer in answers]
        if not answers or any(not t for t in tokens) or len({t[0] for t in tokens}) < len(tokens):
            raise ValueError(f"answers must be non-empty and start with different tokens: {list(answers)!r}")
        logprobs = self._next_logprobs(messages)
        return {answer: float(logprobs[t[0]]) for answer, t in zip(answers, tokens, strict=True)}

    def top_logprobs(self, messages: Sequence[MessageLike], k: int) -> list[tuple[str, float]]:
        """The `k` likeliest first tokens of the reply, as (text, log-probability), likeliest first."""
        values, ids = self._next_logprobs(messages).topk(k)
        return [(self._tokenizer.decode([i]), v) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]

    def _next_logprobs(self, messages: Sequence[MessageLike]) -> Any:
        """Log-softmax of the next-token logits after the prompt (vocab,), in fp32."""
        import torch

        prompt = self._prompts.build(as_messages(messages))
        prefiller = self._one_prompt
        with torch.inference_mode():
            done = prefiller.prefill(prompt.ids, prompt.pixel_values, prefix_len=prompt.prefix_len,
                                     image_token_id=self.image_token_id)
            logits = prefiller.next_logits(prompt.ids[-1], done.cache)
        return torch.log_softmax(logits.float(), dim=-1)

    def stream(
        self, messages: Sequence[MessageLike], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        """The reply in text pieces as they are decoded; joined, they are `generate(...).text`.

        Bad messages raise here, at the call; the model's errors raise while iterating.
        Stopping early (break, close) stops the decoding.
        """
        config = config or GenerationConfig()
        if config.n != 1:
            raise ValueError(f"stream gives one reply, and n is {config.n}: use generate() for candidates")
        prompt = self._prompts.build(as_messages(messages), keep_images=config.keep_images)
        return self._pieces(prompt, config)

    def _pieces(self, prompt: Prompt, config: GenerationConfig) -> Iterator[str]:
        def work(on_tokens: Callable[[list[int]], None], cancelled: Event) -> None:
            self._decode([prompt], config, on_tokens=on_tokens, cancelled=cancelled)

        pieces = TextPieces(self._text)
        stopped = False
        with closing(run_streaming(work)) as steps:  # closing it ends the decoding thread
            for (token,) in steps:
                stopped = stopped or token == self._stop_id
                if not stopped and (piece := pieces.push(token)):
                    yield piece
        if tail := pieces.finish():
            yield tail

    def _decode(
        self,
        prompts: list[Prompt],
        config: GenerationConfig,
        *,
        on_tokens: Callable[[list[int]], None] | None = None,
        cancelled: Event | None = None,
    ) -> _Decoded:
        import torch
        from transformers import GenerationConfig as HFGenerationConfig
        from transformers import StoppingCriteriaList

        sampling = config.temperature > 0
        copies = config.n if sampling else 1  # greedy candidates would all be the same
        device = self._model.device
        # Each prompt `copies` times in a row, ids and tiles alike: generate's own expansion
        # (num_return_sequences) of pixel_values has differed between transformers versions.
        rows_in = [prompt for prompt in prompts for _ in range(copies)]
        # One prompt is prefilled once, through the caches (model.cache) where they are on, and its
        # KV cache is repeated for the `copies` samples; a batch of prompts keeps generate's own path,
        # and so does one greedy prompt with the caches off.
        one = len(prompts) == 1 and (self._prefiller is not None or copies > 1)
        cached = self._one_prompt if one else None
        # A prefill reads the tiles itself: generate then gets the ids and the mask alone.
        given = [replace(p, pixel_values=None) for p in rows_in] if cached is not None else rows_in
        inputs = left_padded(given, pad_id=self._pad_id, device=device, dtype=self._model.dtype)
        tiles = sum(p.num_tiles for p in rows_in)
        saved = {"tiles_computed": tiles, "tiles_reused": 0, "prefix_tokens_reused": 0}
        # A fresh config, and every setting that changes the reply given explicitly: generate
        # fills the unset ones from model.generation_config, then from library defaults (top_k=50).
        hf_config = HFGenerationConfig(
            max_new_tokens=config.max_new_tokens,
            min_new_tokens=0,
            min_length=0,
            do_sample=sampling,
            temperature=config.temperature if sampling else None,
            top_p=config.top_p if sampling else None,
            top_k=0 if sampling else None,  # 0 disables it; greedy ignores it
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            num_return_sequences=1,
            eos_token_id=self._stop_id,
            pad_token_id=self._pad_id,
        )
        clock = TokenClock(on_tokens)
        stops = [cancelled.is_set] if cancelled is not None else []
        if config.should_stop is not None:
            stops.append(config.should_stop)
        criteria = StoppingCriteriaList([cancel_criteria(*stops)] if stops else [])
        # A seed applies to this call only: the caller's RNG state is restored afterwards.
        seeded = config.seed is not None and sampling
        devices = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
        rng = torch.random.fork_rng(devices=devices) if seeded else nullcontext()
        try:
            with rng, torch.inference_mode():
                if seeded:
                    torch.manual_seed(config.seed)
                if cached is not None:
                    inputs, saved = self._prefilled(rows_in[0], inputs, cached, copies)
                output = self._model.generate(
                    **inputs, generation_config=hf_config, streamer=clock, stopping_criteria=criteria
                )
        except torch.OutOfMemoryError as exc:
            raise ModelUnavailable(
                f"{self.name} ran out of memory on {device} for {len(prompts)} prompt(s) of up to "
                f"{inputs['input_ids'].shape[1]} tokens: lower max_tiles, keep_images or the batch, "
                "send smaller screenshots, or use a smaller model"
            ) from exc
        rows = output[:, inputs["input_ids"].shape[1] :].tolist()
        return _Decoded(rows, copies, clock.first_token_at, saved)

    def _prefilled(
        self, prompt: Prompt, inputs: dict[str, Any], prefiller: Prefiller, copies: int = 1
    ) -> tuple[dict[str, Any], dict[str, int]]:
        """generate's inputs continuing from a KV cache of all prompt ids but the last, that
        cache repeated `copies` times (inputs holds the prompt's ids `copies` times)."""
        done = prefiller.prefill(
            prompt.ids, prompt.pixel_values, prefix_len=prompt.prefix_len, image_token_id=self.image_token_id
        )
        if copies > 1:
            done.cache.batch_repeat_interleave(copies)  # a private copy: the prefix cache keeps its own
        inputs = {k: v for k, v in inputs.items() if k != "pixel_values"}
        inputs[prefiller.cache_kw] = done.cache
        saved = {
            "tiles_computed": done.tiles_computed,
            "tiles_reused": done.tiles_reused,
            "prefix_tokens_reused": done.prefix_tokens_reused,
        }
        return inputs, saved

    def _reply(self, row: list[int]) -> tuple[str, int, str]:
        """The text of one output row, its token count (through <|im_end|>), and why it ended."""
        if self._stop_id in row:
            end = row.index(self._stop_id)
            return self._text(row[:end]), end + 1, "stop"
        return self._text(row), len(row), "length"

    def _text(self, ids: list[int]) -> str:
        kept = [t for t in ids if t not in self._skip_on_decode]
        return self._tokenizer.decode(kept, skip_special_tokens=False)


def _first(value: int | Sequence[int]) -> int:
    return int(value if isinstance(value, int) else value[0])
