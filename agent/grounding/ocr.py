"""Grounding by the text on the screenshot: rapidocr reads it, the description's words find it.

No GPU, no markup: it works on any screen, the desktop included. `OCRGrounder` reads each
observation once (cached while the observation lives), so several targets on one screen cost
one pass. rapidocr 3 runs on onnxruntime with the PP-OCR models that ship inside its wheel:
nothing is downloaded. Ordinals and relations come from describe.py ("the second Delete
button", "the Delete button next to Bob", "the OK button in the Save dialog"). A field named
by its label ("the Email field") is clicked inside the box beside or below the label.

    pip install 'internvl-agent[ocr]'
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agent.grounding import Box, Grounding
from agent.grounding.describe import Description, describe
from agent.grounding.regions import content_regions
from agent.grounding.text_match import TextLine, closest_lines, find, pick, reading_order
from tools.errors import GroundingError, ModelUnavailable
from tools.executor import Observation

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

__all__ = ["OCRGrounder", "RapidOCREngine", "TextLine", "screen_text"]

log = logging.getLogger(__name__)

OCREngine = Callable[["Image"], Sequence[TextLine]]
_FIELD_ROLES = {"textbox", "searchbox", "combobox"}
_T = 3  # a box's border is at most this thick (2 px at device scale 2): the inside starts past it
MIN_SCORE = 0.5  # lines read with less confidence are noise (rapidocr's own text_score)
INSTALL_HINT = "OCR grounding needs rapidocr and onnxruntime: pip install 'internvl-agent[ocr]'"


class RapidOCREngine:
    """rapidocr 3 on onnxruntime, with the det and rec models bundled in its wheel.

    It reads each region of the screen that has content on it (regions.py) as an image of its
    own, not the whole screen at once: PP-OCR's detector misses small text on a large, mostly
    empty screen (a small Tk window on a black 1920x1080 desktop read as nothing), and the
    blank parts cost detection time for nothing. `crop=False` reads the whole image in one go.

    Screens are never rotated, so the angle classifier is off. `det_side` caps the longer side
    that text detection sees (the lines are still read from the full-size image): the default
    keeps screens up to 4K whole, as detection at half size misreads 10-px text ("Help" as
    "Hele"). Recognition pads each batch only to its own widest line (`Rec.rec_img_shape`
    width 48, not 320). `threads`: onnxruntime's intra-op threads (default: every core).
    onnxruntime's memory arena is on: crops of every size would otherwise allocate afresh.
    Detection runs per region; recognition, once for every line found, through RapidOCR's own
    steps (`recognize_txt`, `calc_word_boxes`: public methods of rapidocr 3, which the extra pins).
    """

    def __init__(self, *, det_side: int = 4096, threads: int | None = None, crop: bool = True) -> None:
        self.det_side = det_side
        self.threads = threads
        self.crop = crop
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._engine is None:
                try:
                    from rapidocr import RapidOCR
                except ImportError as exc:
                    raise ModelUnavailable(INSTALL_HINT) from exc
                params: dict[str, Any] = {
                    "Global.log_level": "error", "Global.use_cls": False,
                    "Global.max_side_len": 8192,  # no global downscale: small text stays readable
                    "Det.limit_type": "max", "Det.limit_side_len": self.det_side,
                    "Rec.rec_img_shape": [3, 48, 48], "Global.return_word_box": True,
                    "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
                }
                if self.threads is not None:
                    params["EngineConfig.onnxruntime.intra_op_num_threads"] = self.threads
                self._engine = RapidOCR(params=params)
                _without_spinning(self._engine)
            return self._engine

    def __call__(self, image: Image) -> list[TextLine]:
        import numpy as np

        engine = self._load()
        rgb = np.asarray(image.convert("RGB"))
        regions = content_regions(rgb) if self.crop else [Box(0, 0, image.width - 1, image.height - 1)]
        boxes: list[Box] = []
        for region in regions:
            crop = np.ascontiguousarray(rgb[region.top:region.bottom + 1, region.left:region.right + 1])
            found = engine(crop, use_det=True, use_cls=False, use_rec=False)
            boxes += [_box(quad, region.left, region.top) for quad in _quads(found)]
        if not boxes:
            return []
        # Screen text is upright: each line is read from its axis-aligned box, not from the
        # detector's slightly rotated quadrilateral, whose warp cost letters their confidence.
        crops = [rgb[box.top:box.bottom + 1, box.left:box.right + 1] for box in boxes]
        read = engine.recognize_txt(crops)  # every region's lines in one pass: batches fill up
        quads = np.array([[[b.left, b.top], [b.right, b.top], [b.right, b.bottom], [b.left, b.bottom]]
                          for b in boxes], dtype=np.float32)
        words = engine.calc_word_boxes(crops, quads, read)
        if len(words) != len(boxes):  # rapidocr leaves out lines without words: they can't be paired
            words = ((),) * len(boxes)
        lines = [_line(text, box, score, line_words) for text, box, score, line_words
                 in zip(read.txts, boxes, read.scores, words, strict=True)]
        lines = [line for line in lines if line.text and line.score >= MIN_SCORE]
        return reading_order(lines) if len(regions) > 1 else lines


def _without_spinning(engine: Any) -> None:
    """Reopen rapidocr's det and rec sessions with onnxruntime's spin-waiting off: on a shared
    machine its idle threads spin for the busy one and burn a third more CPU for no speed
    (measured on 2 cores under load: 3.4 CPU s a pass spinning, 2.3 not). rapidocr 3 has no
    option for it, so its sessions are replaced; where its layout differs, they are left as they
    are."""
    import onnxruntime

    try:
        holders = [engine._load_det_model().session, engine._load_rec_model().session]
    except AttributeError:  # another rapidocr layout
        log.debug("rapidocr's sessions not found: onnxruntime spin-waiting stays on")
        return
    for holder in holders:
        old = getattr(holder, "session", None)
        path = getattr(old, "_model_path", None)
        if not isinstance(old, onnxruntime.InferenceSession) or path is None:
            continue
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4
        options.enable_cpu_mem_arena = True
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        threads = old.get_session_options().intra_op_num_threads
        if threads > 0:
            options.intra_op_num_threads = threads
        holder.session = onnxruntime.InferenceSession(path, options, providers=old.get_providers())


def _quads(found: Any) -> Any:
    boxes = getattr(found, "boxes", None)
    return () if boxes is None else boxes


def _line(text: str, box: Box, score: float, words: Any) -> TextLine:
    """One line read: its words' confidence (a stray space read at a field's border is not the
    text's), and each word's box."""
    kept = [(word, float(confidence), points) for word, confidence, points in words if word.strip()]
    if kept:
        score = sum(len(w) * c for w, c, _ in kept) / sum(len(w) for w, _, _ in kept)
    return TextLine(text.strip(), box, float(score), tuple((word, _box(points)) for word, _, points in kept))


_SHARED: list[RapidOCREngine] = []  # one engine per process: loading its models takes a while


def screen_text(image: Image) -> str:
    """All the text OCR reads on `image`, one line per text line, in reading order (for
    `expect_text` steps and `screen_text` checks). ModelUnavailable when rapidocr is missing."""
    if not _SHARED:
        _SHARED.append(RapidOCREngine())
    return "\n".join(line.text for line in _SHARED[0](image))


def _box(points: Any, dx: int = 0, dy: int = 0) -> Box:
    xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
    return Box(int(min(xs)) + dx, int(min(ys)) + dy, round(max(xs)) + dx, round(max(ys)) + dy)


class OCRGrounder:
    """Grounds targets by their text on the screenshot. `engine` reads an image into lines
    (default: RapidOCREngine); `downscale_hidpi` reads a HiDPI screenshot at its device size
    (a quarter of the pixels at scale 2, the same text) and scales the boxes back."""

    def __init__(self, engine: OCREngine | None = None, *, downscale_hidpi: bool = True) -> None:
        self.engine: OCREngine = engine if engine is not None else RapidOCREngine()
        self.downscale_hidpi = downscale_hidpi
        self._cache: dict[int, tuple[weakref.ref[Observation], tuple[TextLine, ...]]] = {}
        self._gray: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def read(self, observation: Observation) -> tuple[TextLine, ...]:
        """The text lines on the observation's screenshot, read once per observation."""
        key = id(observation)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0]() is observation:
                return cached[1]
            lines = tuple(self._read(observation))
            self._cache[key] = (weakref.ref(observation), lines)
            weakref.finalize(observation, self._forget, key)
            return lines

    def _forget(self, key: int) -> None:
        self._cache.pop(key, None)
        self._gray.pop(key, None)

    def _read(self, observation: Observation) -> list[TextLine]:
        image = observation.image
        factor = 1.0
        if self.downscale_hidpi:
            factor = min(s / d for s, d in zip(observation.geometry.screenshot_size,
                                               observation.geometry.device_size, strict=True))
        if factor < 1.5:  # not HiDPI (or a downscaled observation): read it as it is
            return list(self.engine(image))
        from PIL import Image as PILImage

        small = image.resize((round(image.width / factor), round(image.height / factor)),
                             PILImage.Resampling.LANCZOS)
        return [_scaled(line, factor, image.size) for line in self.engine(small)]

    def locate(self, observation: Observation, description: str) -> Grounding:
        wanted = describe(description)
        if not wanted.name:
            raise GroundingError(
                f"OCR finds targets by their text, and {description!r} names none: quote the text on it, "
                "as in \"the 'Save' button\""
            )
        lines = self.read(observation)
        targets = find(lines, wanted.name)
        chosen = pick(wanted, targets, lines) if targets else None
        if chosen is None:
            raise GroundingError(_not_found(description, wanted, lines, len(targets)))
        point = chosen.box.center
        if wanted.role in _FIELD_ROLES:
            point = self._field_point(observation, chosen.box) or point
        return Grounding(chosen.box, point, round(chosen.score, 3), "ocr")

    def _field_point(self, observation: Observation, label: Box) -> tuple[int, int] | None:
        """Inside the input box beside or below a label, or None when the text is already in one
        (a placeholder or a value) or no box is found."""
        import numpy as np

        key = id(observation)
        gray = self._gray.get(key)
        if gray is None:
            gray = self._gray[key] = np.asarray(observation.image.convert("L"), dtype=np.int16)
        return field_point(gray, label)


def field_point(gray: np.ndarray, label: Box) -> tuple[int, int] | None:
    """Where to click the field that `label` names, on a grayscale screenshot: inside the first
    box whose left border is to the right of the label, or whose top border is under it; None
    when the text sits inside a box already (a placeholder or a value) or no box is found.

    A border is a run of pixels that is even and differs from its neighbours inside the box;
    a box's left border must meet a top and a bottom border, so the strokes of letters are not
    taken for one."""
    import numpy as np

    height, width = gray.shape
    h = max(label.height, 4)
    cy = label.center[1]

    def even_edge(line: np.ndarray, inside: np.ndarray) -> bool:
        """`line` is one shade (bar a stray pixel or two) that `inside` differs from."""
        even = (abs(line - int(np.median(line))) <= 12).mean() > 0.9
        return bool(line.size > 1 and even and (abs(line - inside) > 20).mean() > 0.9)

    def left_border(x: int) -> bool:
        """A box whose left border is column x, across the label's line: the column is an edge
        from the box's top border to its bottom one (taller than any letter's stroke)."""
        if not 0 < x < width - 2 * h - _T:
            return False
        band = slice(max(cy - h // 4, 0), min(cy + h // 4, height - 1) + 1)
        column = gray[band, x]
        if not even_edge(column, gray[band, x + _T]) or not even_edge(column, gray[band, x - 1]):
            return False
        span = slice(x + _T + 1, x + _T + 1 + 2 * h)
        top = next((y for y in range(cy - h // 4, max(cy - 2 * h, 0), -1)
                    if even_edge(gray[y, span], gray[y + _T, span])), None)
        bottom = next((y for y in range(cy + h // 4, min(cy + 2 * h, height - _T))
                       if even_edge(gray[y, span], gray[y - _T, span])), None)
        if top is None or bottom is None or bottom - top < 8:
            return False
        side = slice(top + _T, bottom - _T + 1)  # rounded corners aside
        return even_edge(gray[side, x], gray[side, x - 1])

    if any(left_border(x) for x in range(label.left - 1, label.left - 2 * h, -1)):
        return None  # the text is inside a box: it is the field's placeholder or value
    for x in range(label.right - 1, min(label.right + 30 * h, width - 1)):
        if left_border(x):
            return min(x + 2 * h, width - 1), cy
    span = slice(label.left, min(label.left + 3 * h, width - 1))
    for y in range(label.bottom - h // 3, min(label.bottom + 4 * h, height - _T - 1)):
        if even_edge(gray[y, span], gray[y + _T, span]) and even_edge(gray[y, span], gray[y - 1, span]):
            return label.left + max(label.width // 2, h), min(y + h // 2, height - 1)
    return None


def _scaled(line: TextLine, factor: float, size: tuple[int, int]) -> TextLine:
    def scale(box: Box) -> Box:
        return Box(int(box.left * factor), int(box.top * factor),
                   min(int((box.right + 1) * factor) - 1, size[0] - 1),
                   min(int((box.bottom + 1) * factor) - 1, size[1] - 1))

    return TextLine(line.text, scale(line.box), line.score, tuple((w, scale(b)) for w, b in line.words))


def _not_found(description: str, wanted: Description, lines: Sequence[TextLine], found: int) -> str:
    """What was looked for, and what was read instead: the closest lines."""
    if not lines:
        return f"could not find {description!r}: OCR read no text on the screen"
    anchor = wanted.near or wanted.within
    if found and anchor is not None and not find(lines, anchor):
        problem, like = f"{wanted.name!r} is there but {anchor!r}, which it is placed by, is not", anchor
    elif found:
        problem, like = f"{found} places read {wanted.name!r}, and none is the one described", wanted.name
    else:
        problem, like = f"no text reads {wanted.name!r}", wanted.name
    nearby = ", ".join(repr(text) for text in closest_lines(lines, like))
    return (f"could not find {description!r} by OCR: {problem}; the closest text read: {nearby} "
            f"({len(lines)} lines in all)")
