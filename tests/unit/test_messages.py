"""Our Message and OpenAI's chat format convert both ways without loss."""

from __future__ import annotations

import pytest
from PIL import Image

from model.base import Message
from model.messages import as_messages, decode_data_url, to_openai
from tools.errors import AgentError

BROKEN_PNG = "data:image/png;base64,AAAA"


def test_openai_dicts_with_data_urls_and_pil_images_become_messages():
    image = Image.new("RGB", (20, 10), "red")
    url = to_openai([Message.user(image)])[0]["content"][0]["image_url"]["url"]
    messages = as_messages([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                     {"type": "image", "image": image},
                                     {"type": "text", "text": "what is this?"}]},
    ])
    assert messages[0] == Message.system("be brief")
    assert [im.size for im in messages[1].images] == [(20, 10), (20, 10)]
    assert messages[1].images[0].getpixel((3, 3)) == (255, 0, 0)
    assert messages[1].text == "what is this?"


def test_round_trip_keeps_text_and_pixels():
    image = Image.new("RGB", (7, 5), (1, 2, 3))
    [back] = as_messages(to_openai([Message.user("a", image, "b")]))
    assert back.content[0] == "a" and back.content[2] == "b"
    assert back.content[1].convert("RGB").getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize(
    ("message", "hint"),
    [
        ({"role": "robot", "content": "x"}, "use one of"),
        ({"role": "user", "content": [{"type": "audio"}]}, "unsupported content part"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
         "not fetched"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": BROKEN_PNG}}]},
         "could not be decoded"),
    ],
)
def test_bad_messages_say_what_to_send(message, hint):
    with pytest.raises(AgentError, match=hint):
        as_messages([message])


def test_remote_urls_are_never_fetched():
    with pytest.raises(AgentError):
        decode_data_url("http://127.0.0.1:9/image.png")


def _data_url(mime: str, raw: bytes) -> str:
    import base64

    return f"data:{mime};base64," + base64.b64encode(raw).decode("ascii")


def test_only_plain_image_formats_are_decoded(monkeypatch):
    from PIL import EpsImagePlugin

    opened: list[object] = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(self))
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    with pytest.raises(AgentError, match="could not be decoded"):
        decode_data_url(_data_url("image/png", eps))
    assert not opened  # never parsed as EPS, so never handed to Ghostscript
    with pytest.raises(AgentError, match="not supported"):
        decode_data_url(_data_url("image/x-eps", eps))


def test_the_declared_type_must_match_the_image():
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buffer, format="PNG")
    with pytest.raises(AgentError, match="image/jpeg but holds a PNG"):
        decode_data_url(_data_url("image/jpeg", buffer.getvalue()))
    assert decode_data_url(_data_url("image/png", buffer.getvalue())).size == (4, 4)
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(jpeg, format="JPEG")
    assert decode_data_url(_data_url("image/jpg", jpeg.getvalue())).format == "JPEG"
