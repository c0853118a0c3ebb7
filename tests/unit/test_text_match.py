"""Matching a description's words to lines read off a screen (the OCR grounder's matcher)."""

from __future__ import annotations

from agent.grounding import Box
from agent.grounding.describe import describe
from agent.grounding.text_match import TextLine, closest_lines, find, normalize, pick


def line(text: str, left: int, top: int, right: int, bottom: int) -> TextLine:
    return TextLine(text, Box(left, top, right, bottom))


def test_normalize_folds_case_accents_punctuation_and_ocr_confusions():
    assert normalize("Ça 0K!") == "ca ok"
    assert normalize("Order 1D: I0O") == normalize("order ID: lOO")
    assert normalize("modern") == normalize("modem")  # rn reads as m


def test_words_inside_a_longer_line_get_their_share_of_its_box():
    (match,) = find([line("Click Delete to remove", 100, 10, 319, 30)], "Delete")
    assert not match.whole_line and match.text == "Delete"
    assert (match.box.left, match.box.right) == (160, 219)  # characters 6..11 of 22, 10 px each


def test_an_ocr_confusion_still_matches_but_two_letters_must_be_exact():
    lines = [line("0rder history", 0, 0, 99, 19), line("0K", 0, 40, 19, 59), line("OR", 0, 80, 19, 99)]
    assert [m.line.text for m in find(lines, "Order history")] == ["0rder history"]
    assert [m.line.text for m in find(lines, "OK")] == ["0K"]


def test_ordinals_follow_reading_order_and_relations_pick_the_nearest():
    lines = [line("Alice", 10, 10, 60, 30), line("Delete", 200, 12, 260, 30),
             line("Bob", 10, 50, 50, 70), line("Delete", 200, 52, 260, 70),
             line("Delete all", 10, 100, 110, 120)]
    targets = find(lines, "Delete")
    second = pick(describe("the second Delete button"), targets, lines)
    assert second is not None and second.box.top == 52
    next_to_bob = pick(describe("the Delete button next to Bob"), targets, lines)
    assert next_to_bob is not None and next_to_bob.box.top == 52
    last = pick(describe("the last Delete button"), targets, lines)  # "Delete all" is no button
    assert last is not None and last.box.top == 52
    assert pick(describe("the Delete button next to Zoe"), targets, lines) is None


def test_the_closest_lines_are_those_most_like_the_name():
    lines = [line("Settings", 0, 0, 9, 9), line("Delet", 0, 20, 9, 29), line("Help", 0, 40, 9, 49)]
    assert closest_lines(lines, "Delete", count=1) == ["Delet"]
