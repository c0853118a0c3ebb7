"""Secrets: filled in by name, listed to the model by name only, redacted from the run directory."""

from __future__ import annotations

import json
import logging

import pytest
from PIL import Image

from agent.policy import HISTORY_TEXT_LIMIT, Policy
from agent.prompts import system_prompt
from agent.redaction import MIN_FRAGMENT, REDACTED, Redactor, redacting_logs
from agent.report import write_report
from agent.trajectory import Step, Trajectory
from agent.vault import Secrets, UnknownSecret
from model.scripted import ScriptedModel
from tools.errors import AgentError
from tools.executor import ActionResult, Geometry, Observation


def test_placeholders_are_filled_by_name_anywhere_in_the_text():
    secrets = Secrets({"password": "hunter2", "user.name": "bobby"})
    assert secrets.fill("<secret>user.name</secret>:<secret> password </secret>!") == "bobby:hunter2!"
    assert secrets.fill("no placeholder here") == "no placeholder here"


def test_an_unknown_name_is_refused_with_the_names_the_model_can_use():
    with pytest.raises(UnknownSecret, match=r"'pin'.*password"):
        Secrets({"password": "hunter2"}).fill("<secret>pin</secret>")


@pytest.mark.parametrize("values", [{"": "xxxx"}, {"has space": "xxxx"}, {"9lives": "xxxx"},
                                    {"password": ""}])
def test_bad_names_and_empty_values_are_agent_errors(values):
    with pytest.raises(AgentError):
        Secrets(values)


@pytest.mark.parametrize("value", ["x", "ok", "pw1"])
def test_values_too_short_to_redact_without_garbling_records_are_refused(value):
    with pytest.raises(AgentError, match="shorter than 4 characters"):
        Secrets({"pin": value})


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


def test_a_secret_inside_an_action_name_leaves_best_of_n_candidates_names_alone(tmp_path):
    trajectory = Trajectory.create(tmp_path, goal="g", run_id="r", secret_values=["fini"])
    candidate = {"text": "finish", "action": {"action": "finish", "answer": "finished"}, "group": 0,
                 "score": None, "picked": True}
    step = trajectory.append(Step(index=1, observation={}, model_text="finish", candidates=[candidate]))
    trajectory.end("finished")
    assert step.candidates is not None
    assert step.candidates[0]["action"] == {"action": "finish", "answer": "[secret]shed"}
    assert step.candidates[0]["text"] == "[secret]sh"


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


# -- the Redactor (agent/redaction.py); every spelling is checked in tests/security --------

KEY = "sk-Zq8Wv3Lr6Tn1Px4Jm7Bd2Hf5Ks9Yc0Ga3Ue6Io8Rb1Nt4"  # 48 characters


def _observation(**fields: str) -> Observation:
    return Observation(image=Image.new("RGB", (100, 100)), geometry=Geometry.identity(100, 100), **fields)


def test_a_named_value_is_shown_as_its_placeholder_and_any_other_as_redacted():
    shown = Redactor({"password": "hunter2"}, placeholders=True)
    shown.add("4321")  # a literal secret has no name
    assert shown.text("HUNTER2 then 4321") == f"<secret>password</secret> then {REDACTED}"
    assert Redactor({"password": "hunter2"}).text("hunter2") == REDACTED
    assert Secrets({"password": "hunter2"}).redactor().text("aHVudGVyMg==") == "<secret>password</secret>"


def test_redacting_twice_changes_nothing_even_for_a_value_inside_the_marks():
    redactor = Redactor({"secret": "secret"}, placeholders=True)
    once = redactor.text("a secret, c2VjcmV0")
    assert once == "a <secret>secret</secret>, <secret>secret</secret>" == redactor.text(once)


def test_a_value_cut_short_by_an_ellipsis_is_redacted_but_a_lone_short_prefix_is_not():
    redactor = Redactor([KEY])
    assert redactor.text(f"unknown action {KEY!r:.37}...") == f"unknown action '{REDACTED}..."
    assert redactor.text(f"{KEY[:30]} …[clipped]") == f"{REDACTED} …[clipped]"
    assert redactor.text(f"{KEY[:MIN_FRAGMENT - 1]}...") == f"{KEY[:MIN_FRAGMENT - 1]}..."
    # Without the mark of a cut, a prefix is not recognised: code must redact before it cuts.
    assert redactor.text(f"{KEY[:30]} and more") == f"{KEY[:30]} and more"


def test_value_redacts_every_string_keys_included_and_keeps_the_rest():
    record = {"a hunter2 key": ["x", ("HUNTER2", 3)], "n": None, "ok": True}
    redacted = {f"a {REDACTED} key": ["x", (REDACTED, 3)], "n": None, "ok": True}
    assert Redactor(["hunter2"]).value(record) == redacted
    assert "hunter2" not in repr(Redactor(["hunter2"]))


def test_a_parse_error_is_written_from_the_reply_with_its_secrets_already_redacted():
    replies = [f'{{"name": "{KEY}", "arguments": {{}}}}', f'{{"name": "{KEY}", "arguments": 7}}']
    # The leak: the message quotes the name cut at 40 characters, too short for redaction to know.
    unredacted = Policy(ScriptedModel(replies[:1])).decide("goal", _observation(), []).parse_error
    assert unredacted is not None and KEY[:36] in unredacted and KEY not in unredacted
    policy = Policy(ScriptedModel(replies), redactor=Secrets({"api_key": KEY}).redactor())
    errors = [policy.decide("goal", _observation(), []).parse_error or "" for _ in replies]
    assert errors[0].startswith("unknown action '<secret>api_key</secret>'. Valid actions:")
    assert errors[1].startswith("'<secret>api_key</secret>': 'arguments' must be an object")
    assert not any(KEY[:MIN_FRAGMENT] in error for error in errors)


def test_the_goal_url_title_and_history_are_redacted_before_anything_is_clipped():
    output = "x" * (HISTORY_TEXT_LIMIT - 30) + KEY  # the clip would keep a 16-character prefix
    step = Step(index=1, observation={}, model_text="", action={"action": "wait"},
                result=ActionResult(ok=True, output=output))
    policy = Policy(ScriptedModel([]), redactor=Secrets({"api_key": KEY}).redactor())
    observation = _observation(url=f"https://x.test/?k={KEY.upper()}", title=f"Key {KEY}")
    text = policy.messages(f"use {KEY}", observation, [step])[1].text
    assert KEY[:MIN_FRAGMENT] not in text and KEY[:MIN_FRAGMENT].upper() not in text
    assert "Goal: use <secret>api_key</secret>" in text
    assert "Current URL: https://x.test/?k=<secret>api_key</secret>" in text
    assert "-> ok: xxx" in text and text.count("<secret>api_key</secret>") == 3


def test_log_records_are_redacted_while_a_run_is_on_and_the_factory_is_put_back_after(caplog):
    log = logging.getLogger("tests.unit.secrets")
    before = logging.getLogRecordFactory()
    with caplog.at_level(logging.INFO):
        with redacting_logs(Redactor(["hunter2"])):
            log.info("typed %s into %r", "HUNTER2", {"q": "hunter2"})
            try:
                raise RuntimeError("hunter2 refused")
            except RuntimeError:
                log.exception("failed")
        log.info("after: hunter2")  # the run is over: the logs are the application's again
    assert logging.getLogRecordFactory() is before
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [f"typed {REDACTED} into {{'q': '{REDACTED}'}}", "failed", "after: hunter2"]
    assert f"RuntimeError: {REDACTED} refused" in caplog.text and "hunter2 refused" not in caplog.text


def test_the_report_redacts_the_secrets_it_is_given_from_older_records(tmp_path):
    trajectory = Trajectory.create(tmp_path, goal="log in as hunter2", run_id="r")  # no secrets given
    trajectory.append(Step(index=1, observation={"url": "https://x.test/?q=HUNTER2"},
                           model_text="aHVudGVyMg"))
    trajectory.end("finished")
    page = write_report(trajectory.run_dir, secrets=["hunter2"]).read_text(encoding="utf-8")
    assert "hunter2" not in page.lower() and "aHVudGVyMg" not in page and REDACTED in page
