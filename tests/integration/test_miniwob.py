"""MiniWoB++ on Playwright: seeded episodes, the reward read from the page, the reference and
grounded policies, and the bench's records. One Chromium serves the module."""

from __future__ import annotations

import contextlib
import importlib.util
import json
from collections.abc import Iterator

import pytest

from agent.bench import EpisodeRecord, parse_time_limit, run_episode, run_miniwob
from agent.bench.instructions import NoRule, instruction_actions
from tasks.miniwob import NO_LIMIT_MS, REFERENCE_TASKS, MiniWoBEnv, resolve_tasks, task_names
from tools.actions import Click, Type
from tools.errors import TaskError

if importlib.util.find_spec("miniwob") is None:  # found, not imported: its __init__ loads gymnasium
    pytest.skip("MiniWoB++'s pages come from the miniwob package: pip install miniwob",
                allow_module_level=True)

SEEDS = range(5)
WRAP = "() => document.getElementById('wrap').outerHTML"


@pytest.fixture(scope="module")
def env() -> Iterator[MiniWoBEnv]:
    """The environment as the reference policy runs in it: reset in place, no settle."""
    with MiniWoBEnv(reload=False, settle=False) as environment:
        yield environment


@pytest.mark.browser
@pytest.mark.parametrize("task", REFERENCE_TASKS)
def test_the_reference_policy_solves_the_task_on_five_seeds(env, task):
    records = [run_episode(env, task, seed, policy="reference") for seed in SEEDS]
    failed = [(r.seed, r.utterance, r.outcome, r.note, r.reason) for r in records if not r.success]
    assert not failed, failed
    assert all(r.raw_reward > 0 and r.outcome == "done" and r.steps >= 1 for r in records)


@pytest.mark.browser
def test_the_same_seed_gives_the_same_utterance_and_page_and_other_seeds_differ(env):
    env.reload = True
    try:
        first = env.reset("enter-text", 3)
        page = first.page.evaluate(WRAP)
        again = env.reset("enter-text", 3)
        assert (again.utterance, again.page.evaluate(WRAP)) == (first.utterance, page)
        others = {env.reset("enter-text", seed).utterance for seed in (4, 5, 6)}
        assert first.utterance not in others and len(others) > 1
    finally:
        env.reload = False
    in_place = env.reset("enter-text", 3)  # reset in the page, as the Selenium environment does
    assert (in_place.utterance, in_place.page.evaluate(WRAP)) == (first.utterance, page)


@pytest.mark.browser
def test_the_observation_is_the_task_area_at_three_times_its_css_size(env):
    observation = env.reset("click-button", 0).observe()
    assert observation.size == (480, 630)
    assert observation.geometry.to_device(480, 630) == (160, 210)


@pytest.mark.browser
@pytest.mark.parametrize("scale", [3, 2])
def test_screenshot_pixels_map_to_css_pixels_exactly(env, scale):
    with MiniWoBEnv(scale=scale, settle=False) if scale != env.scale else contextlib.nullcontext(env) as here:
        episode = here.reset("click-button", 0)
        episode.observe()
        episode.page.evaluate("() => { window.hits = []; document.addEventListener('mousedown', "
                              "(e) => hits.push([e.clientX, e.clientY]), true); }")
        css = [(0, 0), (1, 2), (37, 118), (159, 209)]
        for x, y in css:
            assert episode.executor.execute(Click(x=x * scale + scale // 2, y=y * scale + scale // 2)).ok
        assert [tuple(hit) for hit in episode.page.evaluate("() => hits")] == css


@pytest.mark.browser
def test_a_flightwob_task_runs_over_http_on_localhost_in_its_own_area(env):
    episode = env.reset("flight.AA", 0)
    assert episode.page.url.startswith("http://127.0.0.1:")
    assert set(json.loads(episode.utterance)) >= {"Departure City", "Destination City"}
    assert episode.observe().size == (375 * 3, 667 * 3)
    assert not episode.reward().done


@pytest.mark.browser
def test_the_reward_is_read_from_the_page(env):
    episode = env.reset("enter-text", 1)
    assert not episode.reward().done
    box = episode.page.evaluate("() => document.querySelector('#subbtn').getBoundingClientRect().toJSON()")
    episode.executor.execute(Click(x=round((box["x"] + box["width"] / 2) * 3), y=round((box["y"] + 5) * 3)))
    reward = episode.reward()  # Submit with an empty field: the page says -1
    assert (reward.done, reward.raw_reward, reward.success) == (True, -1.0, False)
    assert not reward.check().ok and "raw reward -1" in reward.check().why


@pytest.mark.browser
def test_time_limits_keep_replace_or_lift_the_tasks_own(env):
    assert env.reset("click-button", 0, time_limit="task").time_limit_ms == 10_000
    assert env.reset("enter-password", 0, time_limit="task").time_limit_ms == 15_000
    assert env.reset("enter-password", 0, time_limit=None).time_limit_ms == NO_LIMIT_MS
    assert env.reset("enter-password", 0, time_limit="task").time_limit_ms == 15_000  # its own, again
    episode = env.reset("click-button", 0, time_limit=0.2)
    episode.page.wait_for_timeout(400)
    reward = episode.reward()
    assert (reward.done, reward.raw_reward, reward.reason) == (True, -1.0, "timed out")
    assert parse_time_limit(None) == "auto" and parse_time_limit("task") == "task"
    assert parse_time_limit("none") is None and parse_time_limit("12.5") == 12.5
    with pytest.raises(TaskError):
        parse_time_limit("soon")


@pytest.mark.browser
def test_the_grounded_policy_clicks_plain_text_buttons_and_writes_every_episode(tmp_path):
    path = tmp_path / "bench.json"
    records = run_miniwob("click-button", seeds=3, policy="grounded", json_path=path, progress=False,
                          runs_dir=tmp_path / "runs")
    assert [r.seed for r in records] == [0, 1, 2]
    assert all(isinstance(r, EpisodeRecord) and r.policy == "grounded" for r in records)
    assert all(r.success for r in records), [(r.utterance, r.note) for r in records]
    written = json.loads(path.read_text())
    assert written["summary"]["episodes"] == 3
    episode = written["episodes"][0]
    wanted = {"task", "seed", "utterance", "success", "reward", "steps", "timings_ms", "run_dir"}
    assert wanted <= set(episode)
    assert episode["timings_ms"]["ground"] > 0 and episode["run_dir"]
    run = json.loads((tmp_path / "runs" / episode["run_dir"].rsplit("/", 1)[1] / "run.json").read_text())
    assert run["success"] is True and run["miniwob"]["task"] == "click-button"
    result = records[0].as_task_result()  # the same verdict as a task's
    assert (result.task, result.success, result.steps) == ("click-button", True, records[0].steps)


@pytest.mark.browser
@pytest.mark.model
def test_the_model_policy_runs_the_agent_on_the_utterance_and_records_a_task_result(tmp_path):
    from model.internvl import InternVLModel

    model = InternVLModel.from_pretrained("tiny")
    records = run_miniwob("click-button", seeds=1, policy="model", model=model, max_steps=1,
                          runs_dir=tmp_path, progress=False)
    (record,) = records
    assert record.steps == 1 and record.run_dir is not None and record.run_dir.parent == tmp_path
    run = json.loads((record.run_dir / "run.json").read_text())
    assert run["goal"] == record.utterance and run["miniwob"]["seed"] == 0 and "checks" in run
    assert {"observe", "model", "parse"} <= set(record.timings_ms)
    assert record.as_task_result().to_json()["task"] == "click-button"


@pytest.mark.browser
def test_an_utterance_the_grounded_policy_cannot_read_is_a_failed_episode_that_says_why(env):
    record = run_episode(env, "bisect-angle", 0, policy="grounded")
    assert (record.success, record.outcome, record.steps) == (False, "gave_up", 0)
    assert record.note is not None and "no rule reads" in record.note


def test_a_model_episode_stays_on_its_page():
    from PIL import Image

    from agent.bench.episodes import _StayOnPage
    from tools.actions import Back, Navigate
    from tools.executor import Geometry, Observation

    observation = Observation(Image.new("RGB", (480, 630)), Geometry((480, 630), (160, 210)))
    for action in (Navigate(url="https://example.org"), Back()):
        assert _StayOnPage().check(action, observation).kind == "block"
    assert _StayOnPage().check(Click(x=1, y=1), observation).kind == "allow"


def test_an_unknown_task_is_a_task_error_that_names_tasks_that_exist():
    with pytest.raises(TaskError) as caught:
        run_miniwob("click-buton,enter-text", seeds=1, progress=False)
    assert "click-buton" in caught.value.message and "click-button" in caught.value.message
    with pytest.raises(TaskError, match="reference policy does not solve"):
        run_miniwob("book-flight", policy="reference", progress=False)
    with pytest.raises(TaskError, match="needs a model"):
        run_miniwob("click-button", policy="model", progress=False)
    assert len(task_names()) > 100 and resolve_tasks("all") == list(task_names())
    assert any(name.startswith("flight.") for name in task_names())


@pytest.mark.parametrize(("utterance", "expected"), [
    ('Click on the "Ok" button.', [Click(target='the "Ok" button')]),
    ('Enter "Jerald" into the text field and press Submit.',
     [Type(text="Jerald", target="the text field"), Click(target='the "Submit" button')]),
    ("Select ab, cd and click Submit.",
     [Click(target='"ab"'), Click(target='"cd"'), Click(target='"Submit"')]),
    ('Click on the link "Eget".', [Click(target='the "Eget" link')]),
    ("Click button ONE, then click button TWO.",
     [Click(target='the "ONE" button'), Click(target='the "TWO" button')]),
    ('Enter the username "u" and the password "p" into the text fields and press login.',
     [Type(text="u", target="the username field"), Type(text="p", target="the password field"),
      Click(target='the "login" button')]),
])
def test_instructions_become_actions_with_targets_in_words(utterance, expected):
    assert instruction_actions(utterance) == expected


def test_an_instruction_no_rule_reads_is_refused():
    with pytest.raises(NoRule):
        instruction_actions("Drag the smaller box so that it is completely inside the larger box.")
