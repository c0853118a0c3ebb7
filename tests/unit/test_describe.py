"""describe(): one reading of a target description that every grounder shares."""

from __future__ import annotations

import pytest

from agent.grounding.describe import Description, describe


@pytest.mark.parametrize(("text", "role", "name"), [
    ("the Click me button", "button", "Click me"),
    ("the Sign in button", "button", "Sign in"),  # "in" is part of the label, not a relation
    ("the 'Sign in' link", "link", "Sign in"),
    ("the \u201cSecond page\u201d link", "link", "Second page"),
    ('button "OK"', "button", "OK"),
    ("an 'Email' input", "textbox", "Email"),
    ("the Email field", "textbox", "Email"),
    ("the field labelled Email", "textbox", "Email"),
    ("the Remember me checkbox", "checkbox", "Remember me"),
    ("the Settings tab", "tab", "Settings"),
    ("the Open recent menu item", "menuitem", "Open recent"),
    ("the Save icon", "img", "Save"),
    ("the search box", "searchbox", ""),
    ("the text field", "textbox", ""),
    ("the Hover me box", None, "Hover me"),  # a generic noun is dropped
    ("Drop here", None, "Drop here"),
    ("the First name field", "textbox", "First name"),  # a label, not an ordinal
    ("the Search for items field", "textbox", "Search for items"),  # "for" inside a label
])
def test_role_words_and_names(text, role, name):
    read = describe(text)
    assert (read.role, read.name) == (role, name)
    assert read.text == text


@pytest.mark.parametrize(("text", "ordinal", "name"), [
    ("the second Delete button", 2, "Delete"),
    ("the 3rd Delete button", 3, "Delete"),
    ("the first link", 1, ""),
    ("the last row", -1, ""),
    ("the second-to-last tab", -2, ""),
    ("the second last Delete button", -2, "Delete"),
    ("the Delete button", None, "Delete"),
    ("the 'second' button", None, "second"),  # quoted: text to find, never grammar
])
def test_ordinals_count_from_one_and_from_the_end(text, ordinal, name):
    read = describe(text)
    assert (read.ordinal, read.name) == (ordinal, name)


@pytest.mark.parametrize(("text", "near", "direction", "within", "name"), [
    ("the Delete button next to Bob", "Bob", None, None, "Delete"),
    ("the Delete button beside 'Bob Smith'", "Bob Smith", None, None, "Delete"),
    ("the Delete button in Bob's row", "Bob", None, None, "Delete"),
    ("the Delete button for Bob", "Bob", None, None, "Delete"),
    ("the input to the right of 'Name'", "Name", "right", None, ""),
    ("the Submit button below the Password field", "Password", "below", None, "Submit"),
    ("the OK button in the Save dialog", None, None, "Save", "OK"),
    ("the OK button inside the 'Save as' dialog", None, None, "Save as", "OK"),
    ("the second Delete button in the Users table", None, None, "Users", "Delete"),
])
def test_relations_name_their_anchor(text, near, direction, within, name):
    read = describe(text)
    assert (read.near, read.direction, read.within, read.name) == (near, direction, within, name)


def test_quoted_text_is_kept_exactly_and_only_for_the_target_itself():
    assert describe("the 'Log In' button").quoted == "Log In"
    assert describe("the OK button in the 'Save as' dialog").quoted is None  # the anchor's quote
    assert describe("the button").quoted is None


def test_a_description_is_frozen_and_lists_its_salient_words():
    read = describe("the 'Save, then close' button")
    assert read.words == ("Save", "then", "close")
    assert isinstance(read, Description)
    with pytest.raises(AttributeError):
        read.name = "other"  # type: ignore[misc]
