"""`internvl-agent ground`: where one target in words is, on a screenshot or on a live page.

    internvl-agent ground shot.png "the Save button"
    internvl-agent ground http://127.0.0.1:8000/ "the second Delete button" --json

It prints the point, the box and which grounder answered, in the screenshot's pixels (device
pixels at --scale 2), and writes a copy of the screenshot with the box drawn on it. A target
that is not found exits with 1 and says why; a bad argument exits with 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.app import app
from agent.cli.common import MODEL_HELP, BaseUrl, check_url, load_model
from tools.errors import AgentError, GroundingError

if TYPE_CHECKING:
    from PIL.Image import Image

    from agent.grounding import Grounder, Grounding
    from model.base import VisionLanguageModel
    from tools.executor import Observation

__all__ = ["ground"]

GROUNDERS = ("auto", "dom", "ocr", "model")
_URL_SCHEMES = ("http://", "https://", "file://")
_BOX_COLOUR = (255, 0, 64)


@app.command()
def ground(
    source: Annotated[str, typer.Argument(
        metavar="IMAGE_OR_URL", help="A screenshot (PNG, JPEG, ...) or a page to open in headless Chromium "
        "(http://, https:// or file://).")],
    description: Annotated[str, typer.Argument(help="The target in words: \"the 'Save' button\", "
                                               "\"the second Delete button\", \"the Email field\".")],
    grounder: Annotated[str, typer.Option(
        help="'auto' (on a page the markup, then OCR, then the model if given; on an image OCR, then the "
        "model), 'dom' (a page's markup; URLs only), 'ocr' (the text on the screenshot) or 'model' "
        "(needs --model).")] = "auto",
    model: Annotated[str | None, typer.Option(
        help=MODEL_HELP + " It grounds with --grounder model, or last with auto.")] = None,
    base_url: BaseUrl = None,
    viewport: Annotated[str, typer.Option(
        help="A page's viewport in CSS pixels, WIDTHxHEIGHT.")] = "1280x720",
    scale: Annotated[float, typer.Option(
        min=0.5, max=4, help="Device pixels per CSS (or logical) pixel: a page is captured at this "
        "scale; an image is taken to have been (OCR then reads it at its logical size).")] = 1.0,
    out: Annotated[Path | None, typer.Option(
        help="Where to write the screenshot with the box drawn on it. Default: IMAGE-ground.png beside "
        "the image, or ground.png here for a page.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=(
        'Print one JSON object as the last line of stdout: {"point": [x, y], "box": [x1, y1, x2, y2], '
        '"score", "source", "image"}.'))] = False,
) -> None:
    """Find DESCRIPTION on a screenshot or a live page: print its point, box and source, and draw it.
    Exits with 1 when the target is not found."""
    if grounder not in GROUNDERS:
        raise AgentError(f"--grounder {grounder!r}: give one of {', '.join(GROUNDERS)}")
    is_url = "://" in source
    if is_url:
        try:
            check_url(source)
        except AgentError as exc:
            raise AgentError(exc.message.removeprefix("--url ")) from None
        size = _viewport(viewport)
    elif grounder == "dom":
        raise AgentError(f"--grounder dom reads a page's markup, and {source} is an image: give a URL, "
                         "or ground with --grounder ocr, auto or model")
    if grounder == "model" and model is None:
        raise AgentError("--grounder model needs a model: give --model (or use --grounder ocr or auto)")
    if not description.strip():
        raise AgentError("DESCRIPTION is empty: describe the target, as in \"the 'Save' button\"")
    image = None if is_url else _open_image(Path(source))
    out = _check_out(out if out is not None else _default_out(source, is_url))
    vlm = _model(model, base_url) if model is not None and grounder in ("auto", "model") else None
    if is_url:
        found, shot = _ground_page(source, description, grounder, vlm, size, scale)
    else:
        assert image is not None
        found, shot = _ground_image(image, description, grounder, vlm, scale)
    _draw(shot, found).save(out)
    _report(found, out, as_json)


def _viewport(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise AgentError(f"--viewport {text!r}: give WIDTHxHEIGHT in CSS pixels, such as 1280x720")
    return int(width), int(height)


def _open_image(path: Path) -> Image:
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise AgentError(f"{path} does not exist: give a screenshot file or a URL (http://, https://, file://)")
    if path.is_dir():
        raise AgentError(f"{path} is a folder: give a screenshot file")
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise AgentError(f"{path} is not an image that can be read ({type(exc).__name__}): give a PNG or "
                         "JPEG screenshot") from None


def _default_out(source: str, is_url: bool) -> Path:
    if is_url:
        return Path("ground.png")
    path = Path(source)
    return path.with_name(f"{path.stem}-ground.png")


def _check_out(out: Path) -> Path:
    """`out`, once it is known that an image can be written there (checked before any work)."""
    from PIL import Image

    if out.suffix.lower() not in Image.registered_extensions():
        raise AgentError(f"--out {out}: give a file name with an image extension, such as .png")
    if out.is_dir():
        raise AgentError(f"--out {out} is a folder: give a file name, such as {out / 'ground.png'}")
    if not out.parent.resolve().is_dir():
        raise AgentError(f"--out {out}: the folder {out.parent} does not exist")
    return out


def _model(name: str, base_url: str | None) -> VisionLanguageModel:
    from rich.console import Console

    with Console(stderr=True).status(f"loading model {name}"):
        return load_model(name, base_url)


def _pixel_grounder(name: str, vlm: VisionLanguageModel | None) -> Grounder:
    """The grounder for a bare screenshot: OCR, the model, or OCR then the model."""
    from agent.grounding.cascade import CascadeGrounder
    from agent.grounding.model import ModelGrounder
    from agent.grounding.ocr import OCRGrounder

    if name == "model":
        assert vlm is not None
        return ModelGrounder(vlm)
    if name == "ocr":
        return OCRGrounder()
    return CascadeGrounder([OCRGrounder(), *([ModelGrounder(vlm)] if vlm is not None else [])])


def _ground_image(image: Image, description: str, grounder: str, vlm: VisionLanguageModel | None,
                  scale: float) -> tuple[Grounding, Image]:
    from tools.executor import Geometry, Observation

    logical = (max(round(image.width / scale), 1), max(round(image.height / scale), 1))
    observation = Observation(image, Geometry(image.size, logical))
    return _locate(_pixel_grounder(grounder, vlm), observation, description), image


def _ground_page(url: str, description: str, grounder: str, vlm: VisionLanguageModel | None,
                 size: tuple[int, int], scale: float) -> tuple[Grounding, Image]:
    """Open `url` in headless Chromium and ground there: the DOM grounder takes part in auto."""
    from agent.grounding.dom import SCROLLED
    from agent.task_run import make_grounder
    from tools.browser import BrowserExecutor

    with BrowserExecutor(start_url=url, viewport=size, device_scale_factor=scale, capture="png") as browser:
        chosen = make_grounder(grounder, browser, vlm)
        observation = browser.observe()
        found = _locate(chosen, observation, description)
        if SCROLLED in found.tried:  # the DOM grounder scrolled it into view: look again
            observation = browser.observe()
            found = _locate(chosen, observation, description)
        return found, observation.image.convert("RGB")


def _locate(grounder: Grounder, observation: Observation, description: str) -> Grounding:
    """The grounding, or exit 1 with the reason in one line: a target not found is not a usage error."""
    try:
        return grounder.locate(observation, description)
    except GroundingError as exc:
        typer.echo(f"internvl-agent: {' '.join(exc.message.split())}", err=True)
        raise typer.Exit(1) from None


def _draw(image: Image, found: Grounding) -> Image:
    """A copy of `image` with the box drawn just outside the target (which stays visible) and a
    cross on the point."""
    from PIL import ImageDraw

    marked = image.copy()
    draw = ImageDraw.Draw(marked)
    width = max(2, round(min(image.size) / 400))
    box = found.box
    draw.rectangle((box.left - width, box.top - width, box.right + width, box.bottom + width),
                   outline=_BOX_COLOUR, width=width)
    x, y = found.point
    arm = 3 * width
    draw.line((x - arm, y, x + arm, y), fill=_BOX_COLOUR, width=max(1, width // 2))
    draw.line((x, y - arm, x, y + arm), fill=_BOX_COLOUR, width=max(1, width // 2))
    return marked


def _report(found: Grounding, out: Path, as_json: bool) -> None:
    box = [found.box.left, found.box.top, found.box.right, found.box.bottom]
    if as_json:
        typer.echo(json.dumps({"point": list(found.point), "box": box, "score": round(found.score, 3),
                               "source": found.source, "image": str(out)}))
        return
    typer.echo(f"point: {found.point[0]}, {found.point[1]}")
    typer.echo(f"box: {', '.join(map(str, box))}")
    typer.echo(f"source: {found.source} (score {found.score:.2f})")
    for reason in found.tried:
        typer.echo(f"  before it, {reason}")
    typer.echo(f"image: {out}")
