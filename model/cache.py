"""Two caches for the local backend: vision features per tile, and the prompt prefix's KV.

An agent shows the model one screenshot per step, and most of the screen rarely changes.
InternVL's vision tower sees each 448x448 tile on its own, so a tile's features (after
the projector) depend only on its pixels, the weights and the dtype. `TileCache` keeps
them by a blake2b hash of the normalized tile, in LRU order under a bound in bytes: on
an unchanged screen every tile is reused, and with one widget changed all tiles but that
one and the thumbnail are.

The system prompt, with the action schema, is the same at every step of a run.
`PrefixCache` prefills it once per prompt text and keeps its KV cache (a transformers
DynamicCache); each call gets a deep copy, so no call mutates the shared one.

`Prefiller` puts both together: it builds the prompt's embeddings (text embeddings with
the image features scattered into the <IMG_CONTEXT> positions, as transformers does) and
runs the language model over every prompt token but the last. generate then continues
from that cache with the last token, which is plain text ("assistant\\n"), so generate
never sees an image. torch and transformers are imported inside the methods.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PrefixCache", "Prefilled", "Prefiller", "TileCache", "tile_key"]


def tile_key(tile: np.ndarray) -> bytes:
    """A hash of one normalized tile's pixels (its float bytes, shape included)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(str(tile.shape).encode())
    digest.update(np.ascontiguousarray(tile).data)
    return digest.digest()


class TileCache:
    """Vision features per tile, evicted least-recently-used first beyond `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Any | None:
        with self._lock:
            features = self._entries.get(key)
            if features is not None:
                self._entries.move_to_end(key)
            return features

    def put(self, key: bytes, features: Any) -> None:
        size = features.numel() * features.element_size()
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = features
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self.bytes -= old.numel() * old.element_size()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0


class PrefixCache:
    """KV caches of prompt prefixes (token ids), the newest `max_entries` kept."""

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def copy_of(self, ids: tuple[int, ...]) -> Any | None:
        """A private copy of the cache for `ids`, or None."""
        with self._lock:
            cache = self._entries.get(ids)
            if cache is None:
                return None
            self._entries.move_to_end(ids)
            return copy.deepcopy(cache)

    def put(self, ids: tuple[int, ...], cache: Any) -> None:
        """Keep a copy of `cache`, which must hold exactly `ids`."""
        with self._lock:
            self._entries[ids] = copy.deepcopy(cache)
            self._entries.move_to_end(ids)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class Prefilled:
    """A KV cache over all prompt ids but the last, and what the caches saved."""

    cache: Any
    tiles_computed: int
    tiles_reused: int
    prefix_tokens_reused: int


class Prefiller:
    """Embeddings and prefill for one prompt, through the tile and prefix caches.

    `vision_batch` tiles go through the vision tower per call; 1 (the CPU default) makes a
    tile's features independent of which other tiles were missing, bit for bit.
    """

    def __init__(
        self,
        model: Any,
        *,
        tiles: TileCache | None,
        prefixes: PrefixCache | None,
        vision_batch: int | None = None,
    ) -> None:
        self._model = model
        self.tiles = tiles
        self.prefixes = prefixes
        self.vision_batch = vision_batch or (1 if model.device.type == "cpu" else 16)
        self._lm = model.model.language_model
        params = inspect.signature(self._lm.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x

    # -- vision ----------------------------------------------------------------------------

    def image_features(self, pixel_values: np.ndarray) -> tuple[Any, int, int]:
        """Features of every tile, (n, tokens, hidden), and how many were computed and reused."""
        import torch

        cache = self.tiles
        keys: list[Any] = (
            [tile_key(t) for t in pixel_values] if cache is not None else list(range(len(pixel_values)))
        )
        found = [cache.get(k) if cache is not None else None for k in keys]
        missing: OrderedDict[Any, list[int]] = OrderedDict()  # a tile repeated in one prompt runs once
        for i, f in enumerate(found):
            if f is None:
                missing.setdefault(keys[i], []).append(i)
        todo = list(missing)
        for start in range(0, len(todo), self.vision_batch):
            chunk = todo[start : start + self.vision_batch]
            rows = [missing[k][0] for k in chunk]
            pixels = torch.from_numpy(pixel_values[rows]).to(
                device=self._model.device, dtype=self._model.dtype
            )
            features = _features(self._model.model.get_image_features(pixel_values=pixels))
            for key, f in zip(chunk, features, strict=True):
                for i in missing[key]:
                    found[i] = f
                if cache is not None:
                    cache.put(key, f.clone())  # not a view that would keep the whole batch alive
        return torch.stack(found), len(todo), len(pixel_values) - len(todo)

    def embeddings(
        self, ids: Any, pixel_values: np.ndarray | None, image_token_id: int
    ) -> tuple[Any, int, int]:
        """The prompt's input embeddings (1, L, hidden) with image features scattered in."""
        embeds = self._model.get_input_embeddings()(ids)
        if pixel_values is None:
            return embeds, 0, 0
        features, computed, reused = self.image_features(pixel_values)
        features = features.to(embeds.device, embeds.dtype)
        mask = (ids == image_token_id).unsqueeze(-1).to(embeds.device)
        if int(mask.sum()) != features.shape[0] * features.shape[1]:
            raise ValueError(
                f"the prompt has {int(mask.sum())} image tokens but {features.shape[0]} tile(s) of "
                f"{features.shape[1]} features"
            )
        return embeds.masked_scatter(mask, features), computed, reused

    # -- prefill ---------------------------------------------------------------------------

    def prefill(
        self, ids: list[int], pixel_values: np.ndarray | None, *, prefix_len: int, image_token_id: int
    ) -> Prefilled:
        """Run the language model over ids[:-1], starting from a cached prefix where one fits."""
        import torch

        device = self._model.device
        body_end = len(ids) - 1
        prefix_len = min(prefix_len, body_end) if self.prefixes is not None else 0
        prefix = tuple(ids[:prefix_len])
        cache = self.prefixes.copy_of(prefix) if self.prefixes is not None and prefix_len > 0 else None
        reused_prefix = prefix_len if cache is not None else 0
        start = 0
        if cache is None:
            cache = self._new_cache()
            if prefix_len > 0 and self.prefixes is not None:
                self._run(torch.tensor([ids[:prefix_len]], device=device), cache)
                self.prefixes.put(prefix, cache)
                start = prefix_len
        else:
            start = prefix_len
        body = torch.tensor([ids[start:body_end]], device=device)
        embeds, computed, reused = self.embeddings(body, pixel_values, image_token_id)
        if body.shape[1]:
            self._lm(inputs_embeds=embeds, use_cache=True, **{self.cache_kw: cache})
        return Prefilled(cache, computed, reused, reused_prefix)

    def next_logits(self, last_id: int, cache: Any) -> Any:
        """The next-token logits (vocab,) after the prompt's last id, continuing `cache` (from
        `prefill`); the cache then holds the whole prompt."""
        import torch

        embeds = self._model.get_input_embeddings()(torch.tensor([[last_id]], device=self._model.device))
        hidden = self._lm(inputs_embeds=embeds, use_cache=True, **{self.cache_kw: cache}).last_hidden_state
        return self._model.lm_head(hidden[0, -1])

    def _run(self, ids: Any, cache: Any) -> None:
        embeds = self._model.get_input_embeddings()(ids)
        self._lm(inputs_embeds=embeds, use_cache=True, **{self.cache_kw: cache})

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self._model.config.text_config)
        except TypeError:  # older releases build it lazily
            return DynamicCache()


def _features(output: Any) -> Any:
    """get_image_features returns a tensor, a list of them, or an output with pooler_output."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (list, tuple)):
        return torch.stack(list(output))
    return output.pooler_output
