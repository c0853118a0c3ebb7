"""What a tool returned, as the model reads it: text, and the images beside it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tools.errors import AgentError
from tools.executor import ActionResult
from tools.registry import ToolRegistry, tool
from tools.tool_output import ToolResult, images_of, split_output


def _png(size: tuple[int, int] = (3, 2)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_text_and_data_are_text_with_no_image():
    assert split_output("hi") == ("hi", ())
    assert split_output({"a": [1, 2]}) == ('{"a": [1, 2]}', ())
    assert split_output([1, "two"]) == ('[1, "two"]', ())
    assert split_output(b"not a png") == ("b'not a png'", ())
    assert split_output(None) == (None, ())


def test_an_image_png_bytes_and_a_mixed_list_split_into_text_and_images():
    image = Image.new("RGB", (5, 4), "blue")
    assert split_output(image) == (None, (image,))
    text, (decoded,) = split_output(_png())
    assert text is None and decoded.size == (3, 2) and decoded.getpixel((0, 0)) == (255, 0, 0)
    text, images = split_output(["a chart:", image, {"n": 1}, _png((7, 7))])
    assert text == 'a chart:\n{"n": 1}' and [i.size for i in images] == [(5, 4), (7, 7)]


def test_png_bytes_cut_short_are_an_agent_error():
    with pytest.raises(AgentError, match="do not decode"):
        split_output(_png()[:30])


def test_the_images_ride_on_the_result_but_never_in_its_json():
    @tool
    def snap() -> list[object]:
        """Take a picture."""
        return ["here", Image.new("L", (2, 2))]

    result = ToolRegistry([snap]).call({"action": "snap"})
    assert isinstance(result, ToolResult) and len(images_of(result)) == 1
    assert result.model_dump(mode="json") == {"ok": True, "error": None, "output": "here",
                                             "elapsed_ms": result.elapsed_ms}
    assert images_of(ActionResult(ok=True)) == ()
