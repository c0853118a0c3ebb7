"""Best-of-N with scripted models: how sampled replies are grouped, and which one is picked.

The models are ScriptedModels whose one reply is a list of candidates; the grounder and the
critics are scripted too (a real grounder needs a page or a model, a real critic a model:
tests/integration/test_best_of_model.py runs the tiny InternVL for those).
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from agent.critic import VLMCritic, mark_image
from agent.grounding import Box, Grounding
from agent.loop import Agent
from agent.policy import Policy
from agent.report import write_report
from agent.selection import SAMPLING_TEMPERATURE, BestOfN, RememberedGrounder
from agent.trajectory import Trajectory
from model.base import GenerationConfig
from model.scripted import ScriptedModel
from tools.errors import AgentError, GroundingError
from tools.executor import Observation

# 1001 x 501 pixels: the model's 0..1000 are these pixels across, and half of them down.
SIZE = (1001, 501)


def _observation() -> Observation:
    from tools.executor import Geometry

    return Observation(image=Image.new("RGB", SIZE, (255, 255, 255)), geometry=Geometry.identity(*SIZE))


class BoxGrounder:
    """Finds each description in a fixed table of boxes; counts what it was asked."""

    def __init__(self, boxes: dict[str, Box]) -> None:
        self.boxes, self.asked = boxes, []

    def locate(self, observation: Observation, description: str) -> Grounding:
        self.asked.append(description)
        if description not in self.boxes:
            raise GroundingError(f"no {description!r} on the screen")
        return Grounding.of(self.boxes[description], "scripted")


class TableCritic:
    """Scores an action by its name and text from a table; counts its calls."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores, self.calls = scores, []

    def score(self, goal, observation, action, mark) -> float:
        self.calls.append((action, mark))
        return self.scores[action.name]


def _decide(replies: list[str], best_of: BestOfN, goal: str = "save the settings"):
    policy = Policy(ScriptedModel([replies]), best_of=best_of)
    return policy.decide(goal, _observation(), [])


def test_nearby_clicks_are_one_vote_and_the_largest_group_wins():
    replies = ["click(x=100, y=200)", "click(x=700, y=300)", "click(x=104, y=197)", "click(x=103, y=202)"]
    decision = _decide(replies, BestOfN(4))
    groups = [c["group"] for c in decision.candidates]
    assert groups == [0, 1, 0, 0]
    assert decision.text == "click(x=100, y=200)"
    assert (decision.action.x, decision.action.y) == (100, 100)  # y: 200 of 1000 on 501 pixels
    assert [c["picked"] for c in decision.candidates] == [True, False, False, False]
    assert all(c["score"] is None for c in decision.candidates)


def test_a_click_inside_a_grounded_box_agrees_with_a_click_on_that_target_in_words():
    grounder = BoxGrounder({"the Save button": Box(400, 100, 600, 140)})
    replies = ['click(target="the Save button")', "click(x=800, y=900)", "click(x=420, y=250)",
               "click(x=810, y=890)", "click(x=580, y=270)"]
    decision = _decide(replies, BestOfN(5, grounder=grounder))
    assert [c["group"] for c in decision.candidates] == [0, 1, 0, 1, 0]
    assert decision.action.target == "the Save button"
    assert grounder.asked == ["the Save button"]  # once, however many candidates compare with it


def test_without_a_grounder_targets_in_words_agree_when_their_words_do():
    replies = ['click(target="Save  button")', 'click(target="save button")', 'click(target="Cancel")']
    assert [c["group"] for c in _decide(replies, BestOfN(3)).candidates] == [0, 0, 1]


def test_typing_agrees_on_the_same_text_into_the_same_target():
    grounder = BoxGrounder({"the name field": Box(10, 10, 300, 40), "name": Box(12, 12, 290, 38)})
    replies = ['type(text="Ada", target="the name field")', 'type(text="Ada", target="name")',
               'type(text="ada", target="name")', 'type(text="Ada", target="the name field", submit=True)',
               'type(text="Ada")']
    decision = _decide(replies, BestOfN(5, grounder=grounder))
    assert [c["group"] for c in decision.candidates] == [0, 0, 1, 2, 3]


def test_drags_agree_when_both_ends_do():
    replies = ["drag(start=[100, 100], end=[500, 500])", "drag(start=[102, 101], end=[498, 503])",
               "drag(start=[100, 100], end=[900, 500])"]
    assert [c["group"] for c in _decide(replies, BestOfN(3)).candidates] == [0, 0, 1]


def test_other_actions_agree_on_their_normalized_fields():
    replies = ['finish(answer="Done ")', 'finish(answer="done")', 'key(keys=["ctrl", "s"])',
               'finish(answer="not done")', 'key(keys=["Control", "S"])', "wait(seconds=1)"]
    decision = _decide(replies, BestOfN(6))
    assert [c["group"] for c in decision.candidates] == [0, 0, 1, 2, 1, 3]
    assert decision.action.name == "finish" and decision.action.answer == "Done "


def test_a_tie_goes_to_the_group_sampled_first():
    replies = ["scroll(dy=3)", "click(x=10, y=10)", "click(x=10, y=11)", "scroll(dy=3)"]
    decision = _decide(replies, BestOfN(4))
    assert decision.action.name == "scroll"


def test_replies_that_do_not_parse_never_win_while_one_does():
    decision = _decide(["I think we should click", "no idea", "click(x=5, y=5)"], BestOfN(3))
    assert decision.action is not None and decision.parse_error is None
    assert [c["group"] for c in decision.candidates] == [None, None, 0]
    assert "parse_error" in decision.candidates[0] and decision.candidates[0]["action"] is None


def test_when_nothing_parses_the_first_replys_error_goes_back_to_the_model():
    decision = _decide(["hmm", "also hmm"], BestOfN(2))
    assert decision.action is None and decision.parse_error
    assert decision.text == "hmm" and decision.candidates[0]["picked"]


def test_a_critic_scores_each_group_once_and_its_best_group_wins_over_the_votes():
    critic = TableCritic({"click": 0.2, "scroll": 0.9})
    replies = ["click(x=100, y=100)", "click(x=101, y=100)", "click(x=99, y=101)", "scroll(dy=2)"]
    decision = _decide(replies, BestOfN(4, critic=critic))
    assert decision.action.name == "scroll"
    assert len(critic.calls) == 2
    assert critic.calls[0][1] == (100, 50)  # where the click lands, in pixels, for the critic to draw
    assert [c["score"] for c in decision.candidates] == [0.2, 0.2, 0.2, 0.9]
    assert [c["picked"] for c in decision.candidates] == [False, False, False, True]


def test_equal_scores_fall_back_to_the_votes():
    critic = TableCritic({"click": 0.5, "scroll": 0.5})
    decision = _decide(["scroll(dy=2)", "click(x=1, y=1)", "click(x=1, y=2)"], BestOfN(3, critic=critic))
    assert decision.action.name == "click"


def test_a_greedy_config_samples_n_replies_at_the_default_temperature():
    best = BestOfN(4)
    assert best.sampling(GenerationConfig(max_new_tokens=9)) == GenerationConfig(
        max_new_tokens=9, n=4, temperature=SAMPLING_TEMPERATURE)
    assert best.sampling(GenerationConfig(temperature=1.2)).temperature == 1.2
    with pytest.raises(ValueError, match="at least 2"):
        BestOfN(1)


def test_a_remembered_grounder_answers_each_target_once_per_observation():
    inner = BoxGrounder({"OK": Box(0, 0, 9, 9)})
    grounder = RememberedGrounder(inner)
    first, second = _observation(), _observation()
    for _ in range(2):
        assert grounder.locate(first, "OK").point == (4, 4)
        with pytest.raises(GroundingError):
            grounder.locate(first, "Cancel")
    grounder.locate(second, "OK")
    assert inner.asked == ["OK", "Cancel", "OK"]


class LogprobModel(ScriptedModel):
    """A scripted model that also answers log-probabilities, from a table."""

    def __init__(self, logprobs: dict[str, float]) -> None:
        super().__init__([])
        self.logprobs, self.asked = logprobs, []

    def answer_logprobs(self, messages, answers):
        self.asked.append(messages)
        return {answer: self.logprobs[answer] for answer in answers}


def test_the_vlm_critic_reads_yes_against_no_and_shows_the_mark():
    import math

    model = LogprobModel({"Yes": math.log(0.3), "No": math.log(0.1)})
    critic = VLMCritic(model)
    decision = _decide(["click(x=500, y=500)", "scroll(dy=1)"], BestOfN(2, critic=critic))
    assert decision.candidates[0]["score"] == pytest.approx(0.75)
    image, question = model.asked[0][0].content
    assert image.getpixel((500 + 12, 250)) == (230, 0, 0)  # the circle around the click, on a white page
    assert "save the settings" in question and '"click"' in question and '"x"' not in question
    assert "Yes or No" in question


def test_the_vlm_critic_needs_a_model_with_logprobs():
    with pytest.raises(AgentError, match="log-probabilities"):
        VLMCritic(ScriptedModel([]))


def test_a_box_is_drawn_as_a_rectangle():
    marked = mark_image(Image.new("RGB", (100, 100), (255, 255, 255)), Box(10, 20, 60, 70))
    assert marked.getpixel((10, 40)) == (230, 0, 0) and marked.getpixel((35, 45)) == (255, 255, 255)


def test_an_agent_records_every_candidate_in_its_step_and_its_report(tmp_path):
    replies = ['finish(answer="42")', 'finish(answer="41")', 'finish(answer=" 42")']
    agent = Agent(ScriptedModel([replies]), max_steps=2, runs_dir=tmp_path, best_of=3)
    trajectory = agent.run("What is six times seven?")
    assert trajectory.outcome == "finished" and trajectory.answer == "42"
    line = json.loads((trajectory.run_dir / "steps.jsonl").read_text().splitlines()[0])
    assert [(c["group"], c["picked"]) for c in line["candidates"]] == [(0, True), (1, False), (0, False)]
    assert line["candidates"][1]["action"] == {"action": "finish", "answer": "41"}
    assert Trajectory.read_steps(trajectory.run_dir)[0].candidates == line["candidates"]
    html = write_report(trajectory.run_dir).read_text()
    assert "3 candidates" in html and "picked" in html and "&quot;41&quot;" in html


def test_an_agent_without_best_of_records_no_candidates(tmp_path):
    trajectory = Agent(ScriptedModel(['finish(answer="1")']), max_steps=1, runs_dir=tmp_path).run("goal")
    assert Trajectory.read_steps(trajectory.run_dir)[0].candidates is None
