"""Secrets: filled in by name, listed to the model by name only, redacted from the run directory."""

from __future__ import annotations

import json

import pytest

from agent.prompts import system_prompt
from agent.trajectory import Step, Trajectory
from agent.vault import Secrets, UnknownSecret
from tools.errors import AgentError


def test_placeholders_are_filled_by_name_anywhere_in_the_text():
    secrets = Secrets({"password": "hunter2", "user.name": "bob"})
    assert secrets.fill("<secret>user.name</secret>:<secret> password </secret>!") == "bob:hunter2!"
    assert secrets.fill("no placeholder here") == "no placeholder here"


def test_an_unknown_name_is_refused_with_the_names_the_model_can_use():
    with pytest.raises(UnknownSecret, match=r"'pin'.*password"):
        Secrets({"password": "hunter2"}).fill("<secret>pin</secret>")


@pytest.mark.parametrize("values", [{"": "x"}, {"has space": "x"}, {"9lives": "x"}, {"password": ""}])
def test_bad_names_and_empty_values_are_agent_errors(values):
    with pytest.raises(AgentError):
        Secrets(values)


def test_the_repr_names_the_secrets_but_never_shows_a_value():
    assert "hunter2" not in repr(Secrets({"password": "hunter2"}))
    assert "password" in repr(Secrets({"password": "hunter2"}))


def test_the_system_prompt_lists_the_names_only():
    prompt = system_prompt([], secret_names=("password", "otp"))
    assert "<secret>password</secret>" in prompt and "password, otp" in prompt
    assert "secret" not in system_prompt([]).lower()  # no secrets: no paragraph about them


def test_secrets_given_to_a_trajectory_never_reach_its_files(tmp_path):
    trajectory = Trajectory.create(tmp_path, goal="log in with hunter2", run_id="r",
                                   secret_values=["hunter2"])
    trajectory.append(Step(index=1, observation={}, model_text='type "hunter2" now',
                           action={"action": "type", "text": "hunter2"}))
    trajectory.end("finished", answer="typed hunter2")
    files = "".join(p.read_text() for p in (tmp_path / "r").iterdir())
    assert "hunter2" not in files
    assert json.loads((tmp_path / "r" / "run.json").read_text())["goal"] == "log in with [secret]"


def test_a_secret_inside_an_action_name_leaves_the_name_and_the_outcome_alone(tmp_path):
    trajectory = Trajectory.create(tmp_path, goal="g", run_id="r", secret_values=["fini"])
    step = trajectory.append(Step(index=1, observation={}, model_text="finish now",
                                  action={"action": "finish", "answer": "finished"}))
    trajectory.end("finished")
    assert step.action == {"action": "finish", "answer": "[secret]shed"}


def test_every_spelling_of_a_secret_is_redacted_keys_included(tmp_path):
    secret = 'pä ss"wörd&1'
    trajectory = Trajectory.create(tmp_path, goal="g", run_id="r", secret_values=[secret])
    model_text = " ".join([secret, json.dumps(secret), json.dumps(secret, ensure_ascii=False), repr(secret)])
    trajectory.append(Step(index=1, observation={"url": "https://x.test/?q=p%C3%A4+ss%22w%C3%B6rd%261"},
                           model_text=model_text, grounded={f"the box showing {secret}": [1, 2]}))
    trajectory.end("finished")
    written = (tmp_path / "r" / "steps.jsonl").read_text(encoding="utf-8")
    assert "ss" not in written.replace("[secret]", "") and "rd" not in written


def test_a_literal_secret_typed_later_is_removed_from_the_goal_in_run_json_at_once(tmp_path):
    trajectory = Trajectory.create(tmp_path, goal="log in with pin 4321", run_id="r")
    assert "4321" in (tmp_path / "r" / "run.json").read_text()
    trajectory.add_secret("4321")  # a `type` with secret: true, before the run ends (or is killed)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["goal"] == "log in with pin [secret]"
    trajectory.end("finished")


def test_text_too_short_to_redact_safely_is_not_registered():
    from agent.vault import literal_secret
    from tools.actions import Type

    assert literal_secret(Type(text="n", secret=True)) is None
    assert literal_secret(Type(text="4321", secret=True)) == "4321"
    assert literal_secret(Type(text="<secret>pw</secret>", secret=True)) is None  # filled, known
    assert literal_secret(Type(text="public text")) is None
