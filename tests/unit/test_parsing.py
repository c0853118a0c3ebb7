"""parse_action: every accepted format, coordinate conversion, and feedback for the model."""

from __future__ import annotations

import pytest

from agent.parsing import EXAMPLE, ParseError, parse_action
from tools import errors
from tools.actions import ACTION_ADAPTER, Click, Drag, Finish, Key, Scroll, Type, Wait
from tools.coordinates import MAX_SCAN, parse_box, to_model_space, to_pixels
from tools.registry import ToolRegistry

# Width 1001 and height 501 make the 0..1000 -> pixel map easy to read: px = v, py = v / 2.
SIZE = (1001, 501)


def parse(text: str, registry: ToolRegistry | None = None, size: tuple[int, int] = SIZE):
    action = parse_action(text, image_size=size, registry=registry)
    adapter = registry.union_adapter() if registry else ACTION_ADAPTER
    assert adapter.validate_python(action.model_dump()) == action
    return action


def parse_error(text: str, registry: ToolRegistry | None = None) -> str:
    with pytest.raises(ParseError) as info:
        parse_action(text, image_size=SIZE, registry=registry)
    message = str(info.value)
    assert len(message) < 600
    assert EXAMPLE in message and "Valid actions: back, click," in message
    return message


@pytest.fixture
def registry() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool
    def lookup(city: str, x: int = 0, units: str = "metric") -> str:
        """Look up the weather in a city."""
        return city

    return registry


def test_parse_error_is_the_one_from_the_error_tree():
    assert ParseError is errors.ParseError


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "click", "arguments": {"x": 500, "y": 300}}</tool_call>',
        '<tool_call>\n{"name": "click", "arguments": {"x": 500, "y": 300}}',  # stopped before the close tag
        '{"name": "click", "arguments": {"x": 500, "y": 300}}',
        '{"name": "click", "arguments": "{\\"x\\": 500, \\"y\\": 300}"}',  # OpenAI's string arguments
        '{"action": "click", "x": 500, "y": 300}',
        '```json\n{"action": "click", "x": 500, "y": 300}\n```',
        "{'action': 'click', 'x': 500, 'y': 300, 'target': None}",  # Python literal spelling
        "click(x=500, y=300)",
        "click(500, 300)",
        "pyautogui.click(500, 300)",
        "<ref>the OK button</ref><box>[[400, 200, 600, 400]]</box>",
        "[[400, 200, 600, 400]]",
    ],
)
def test_every_format_gives_the_same_click(text):
    assert parse(text) == Click(x=500, y=150)


def test_prose_and_thoughts_around_the_action_are_ignored():
    text = (
        "Thought: the login form is visible (see the top right). I should press Submit.\n"
        'Action: <tool_call>{"name": "type", "arguments": {"text": "ada", "submit": true}}</tool_call>\n'
        "That should log me in."
    )
    assert parse(text) == Type(text="ada", submit=True)
    assert parse("Sure! I'll scroll down now: scroll(dy=5). Done.") == Scroll(dy=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('type("hello", submit=True)', Type(text="hello", submit=True)),
        ('key("ctrl", "s")', Key(keys=("ctrl", "s"))),
        ('key(["ctrl", "s"])', Key(keys=("ctrl", "s"))),
        ('key(keys="ctrl+s")', Key(keys=("ctrl", "s"))),
        ("wait(2)", Wait(seconds=2)),
        ('finish("42")', Finish(answer="42")),
        ("finish()", Finish()),
        ('click("the Submit button")', Click(target="the Submit button")),
        ("move(1000, 1000)", parse_action("move(x=1000, y=1000)", image_size=SIZE)),
        ("drag(0, 0, 1000, 1000)", Drag(start=(0, 0), end=(1000, 500))),
        ('drag([100, 100], "the bin")', Drag(start=(100, 50), end="the bin")),
        ('click(x=10, y=10, button="right", clicks=2, modifiers=["shift"])',
         Click(x=10, y=5, button="right", clicks=2, modifiers=("shift",))),
    ],
)
def test_call_expressions_accept_keyword_and_natural_positional_forms(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("size", "point", "pixels"),
    [
        ((1000, 1000), (0, 0), (0, 0)),
        ((1000, 1000), (1000, 1000), (999, 999)),
        ((1000, 1000), (500, 500), (500, 500)),  # 499.5 rounds to even
        ((1920, 1080), (500, 500), (960, 540)),
        ((1920, 1080), (250, 750), (480, 809)),
        ((1, 1), (1000, 1000), (0, 0)),
    ],
)
def test_model_coordinates_become_screenshot_pixels(size, point, pixels):
    action = parse(f"click({point[0]}, {point[1]})", size=size)
    assert (action.x, action.y) == pixels
    assert (to_pixels(point[0], size[0]), to_pixels(point[1], size[1])) == pixels


@pytest.mark.parametrize("size", [1001, 1920, 3840])
def test_pixels_map_back_to_the_model_space_they_came_from(size):
    assert all(to_model_space(to_pixels(value, size), size) == value for value in range(1001))
    assert (to_model_space(0, size), to_model_space(size - 1, size)) == (0, 1000)


def test_a_one_pixel_image_maps_back_without_dividing_by_zero():
    assert to_model_space(0, 1) == 0


def test_a_grounding_box_clicks_its_centre():
    action = parse("<ref>Search</ref><box>[[100, 200, 300, 600]]</box>", size=(1920, 1080))
    assert (action.x, action.y) == (round(200 * 1919 / 1000), round(400 * 1079 / 1000))
    assert action.button == "left" and action.clicks == 1


def test_drag_points_are_converted_but_targets_are_not():
    action = parse('{"action": "drag", "start": [1000, 0], "end": "the trash can"}')
    assert action == Drag(start=(1000, 0), end="the trash can")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("click(1001, 5)", "x must be from 0 to 1000"),
        ("click(5, -1)", "y must be from 0 to 1000"),
        ('{"action": "click", "x": NaN, "y": 5}', "got nan"),
        ('{"action": "click", "x": 1e999, "y": 5}', "got inf"),
        ('click(x="500", y=5)', "x must be a number"),
        ("click(x=True, y=5)", "x must be a number"),
        ('{"action": "drag", "start": [5, 2000], "end": [1, 1]}', "start[1] must be from 0 to 1000"),
        ("<box>[[0, 0, 1200, 10]]</box>", "from 0 to 1000"),
    ],
)
def test_coordinates_outside_the_model_space_are_rejected(text, words):
    assert words in parse_error(text)


def test_unknown_action_names_the_valid_ones():
    message = parse_error('<tool_call>{"name": "tap", "arguments": {"x": 1, "y": 2}}</tool_call>')
    assert message.startswith("unknown action 'tap'")
    assert "click, drag, fail, finish, key, move, navigate, scroll, type, wait" in message
    assert "did you mean 'click'" in parse_error('{"action": "clik", "x": 1, "y": 2}')
    assert "unknown action 'tap'" in parse_error("Let me tap(100, 200).")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("click(x=5, y=5, clicks=5)", "click: clicks must be at most 3"),
        ("click(x=5, y=5, colour='red')", "click: unknown field 'colour' (fields: x, y, target, button"),
        ("click(x=5)", "click: give both x and y"),
        ('type(submit=True)', "type: text is required"),
        ('key("ctrll")', "key: keys[0]: unknown key 'ctrll'; did you mean 'ctrl'"),
        ("wait(600)", "wait: seconds must be at most 60"),
        ("scroll(x=1, y=1)", "scroll needs a non-zero dx or dy"),
        ("click(1, 2, 3)", "click takes 2 positional argument(s) (x, y)"),
        ("click(5, 5, x=3)", "x is given twice"),
        ('{"name": 5}', "'name' must be the action name"),
        ('{"name": "click", "arguments": [1, 2]}', "'arguments' must be an object"),
        ('<tool_call>{"name": "click", "arguments": {"x": 1,</tool_call>', "<tool_call> must hold"),
        ("click(x=5, y=5", "missing its closing parenthesis"),
        ("Nothing to do here.", "no action found"),
        ("", "no action found"),
    ],
)
def test_bad_output_gets_a_short_message_that_says_what_to_fix(text, words):
    assert words in parse_error(text)


def test_python_escape_sequences_read_the_same_whatever_the_warning_filters():
    # "\\d" is an invalid escape that Python warns about; pytest here turns warnings into errors.
    assert parse("type(text='a\\d')") == Type(text="a\\d")
    assert parse("{'action': 'type', 'text': 'a\\d'}") == Type(text="a\\d")


def test_the_first_format_present_decides():
    # A broken tool call is reported, not silently replaced by a box later in the text.
    text = '<tool_call>{"name": "click", "arguments": {"x": 5, "y": 5, "clicks": 9}}</tool_call>'
    text += " <box>[[1, 2, 3, 4]]</box>"
    assert "clicks must be at most 3" in parse_error(text)
    assert parse('click(10, 10) and also {"action": "back"}').name == "back"


@pytest.mark.parametrize(
    "code",
    [
        'click(x=__import__("os").system("touch {marker}"), y=1)',
        'click(x=open("{marker}", "w"), y=1)',
        'type(text=exec("open(\'{marker}\', \'w\')"))',
        'type(text=(lambda: open("{marker}", "w"))())',
        "type(text=[open('{marker}', 'w') for _ in 'a'])",
        'type(**{{"text": open("{marker}", "w")}})',
        'click(*[open("{marker}", "w"), 1])',
        "click(x=1 + 1, y=2)",
        "type(text=os.environ)",
    ],
)
def test_call_arguments_are_read_as_literals_and_never_run(code, tmp_path):
    marker = tmp_path / "ran"
    message = parse_error(code.format(marker=marker))
    assert "must be literals" in message
    assert not marker.exists()


def test_registered_tools_parse_into_their_model_without_coordinate_conversion(registry):
    model = registry.model_for("lookup")
    expected = model(city="Paris", x=5000)
    for text in (
        '<tool_call>{"name": "lookup", "arguments": {"city": "Paris", "x": 5000}}</tool_call>',
        '{"action": "lookup", "city": "Paris", "x": 5000}',
        'lookup("Paris", 5000)',
        'lookup(city="Paris", x=5000)',
    ):
        assert parse(text, registry) == expected
    assert "lookup" in parse_error("tap()", registry)  # the tool is among the valid names
    assert "lookup: city is required" in parse_error("lookup(x=1)", registry)
    assert parse("click(500, 0)", registry) == Click(x=500, y=0)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 50_000,
        "{" * 50_000,
        '{"a": ' * 5_000,
        "click(" * 5_000,
        "(" * 5_000 + "click(1, 2",
        '{"action": "click", "x": ' + "9" * 5_000 + ', "y": 1}',
        "[[" + "1" * 5_000 + ", 1, 1, 1]]",
        '<tool_call>{"name": "click", "arguments": ' + "[" * 3_000 + "]" * 3_000 + "}</tool_call>",
        "\x00\ud800<tool_call>\uffff",
    ],
)
def test_hostile_input_gives_a_parse_error(text):
    parse_error(text)


def test_an_action_after_hostile_noise_is_still_found():
    assert parse("(" * 5_000 + "click(1, 2)") == Click(x=1, y=1)
    assert parse("{" * 5_000 + '{"action": "back"}') == parse("back()")


def test_only_the_first_scanned_characters_are_read():
    assert parse(" " * (MAX_SCAN - 20) + "click(1, 2)") == Click(x=1, y=1)
    parse_error(" " * MAX_SCAN + "click(1, 2)")


def test_image_size_must_be_positive():
    with pytest.raises(ValueError, match="image_size"):
        parse_action("click(1, 2)", image_size=(0, 10))


@pytest.mark.parametrize(
    "text",
    ['key("ctrl+s")', 'key(keys=["ctrl+s"])', '{"action": "key", "keys": "ctrl+s"}',
     '<tool_call>{"name": "key", "arguments": {"keys": ["ctrl", "s"]}}</tool_call>'],
)
def test_key_combinations_written_with_plus_are_split(text):
    assert parse_action(text, image_size=(100, 100)).keys == ("ctrl", "s")


def test_parse_box_reads_the_first_box_in_pixels_and_refuses_wild_or_missing_ones():
    size = (1001, 501)  # 1000 and 500 pixels across: one model unit is one pixel, or half of one
    assert parse_box("<ref>OK</ref><box>[[100,200,300,400]]</box>", image_size=size) == (100, 100, 300, 200)
    assert parse_box("[[300, 400, 100, 200]] and [[0, 0, 1, 1]]", image_size=size) == (100, 100, 300, 200)
    with pytest.raises(ParseError, match="no box found"):
        parse_box("the button at the top", image_size=(100, 100))
    with pytest.raises(ParseError, match="0 to 1000"):
        parse_box("[[0, 0, 1200, 10]]", image_size=(100, 100))
