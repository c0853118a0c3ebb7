"""Best-of-N on the tiny InternVL (transformers' real classes, random weights): N samples from
one batched generate that prefills once, repeatable with a seed, and a critic whose score
is the softmax of the "Yes" and "No" next-token logits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from agent.cli import DEMO_PAGE
from agent.critic import VLMCritic
from agent.policy import Policy
from agent.selection import BestOfN
from model.base import GenerationConfig, Message
from model.internvl import InternVLModel
from tools.actions import Click
from tools.executor import Geometry, Observation

pytestmark = pytest.mark.model

torch = pytest.importorskip("torch")

SAMPLED = GenerationConfig(max_new_tokens=8, temperature=1.0, n=4, seed=11)
GOAL = "Save the settings."


@pytest.fixture(scope="module")
def models() -> Iterator[tuple[InternVLModel, InternVLModel]]:
    """The tiny model with both caches, and the same weights with neither."""
    torch.set_num_threads(2)
    cached = InternVLModel.from_pretrained("tiny", max_tiles=4)
    plain = InternVLModel(cached.hf_model, cached.tokenizer, name="tiny", max_tiles=4, tile_cache_mb=0,
                          prefix_cache=False)
    yield cached, plain


@pytest.fixture(scope="module")
def screen() -> Image.Image:
    image = Image.new("RGB", (896, 448), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 200, 80), fill=(200, 200, 200), outline=(60, 60, 60))
    draw.text((60, 52), "Save", fill=(0, 0, 0))
    return image


def _messages(image: Image.Image) -> list[Message]:
    return [Message.system("You operate a web browser. Reply with one action."),
            Message.user(image, f"Goal: {GOAL} What next?")]


class _Counting:
    """Counts generate calls and the language model's passes over more than one token (prefills)."""

    def __init__(self, vlm: InternVLModel) -> None:
        self.vlm, self.generates, self.prefills, self.decode_rows = vlm, 0, [], set()

    def __enter__(self) -> _Counting:
        model = self.vlm.hf_model
        self._generate = model.generate

        def generate(*args, **kwargs):
            self.generates += 1
            return self._generate(*args, **kwargs)

        def seen(module, args, kwargs):
            embeds = kwargs.get("inputs_embeds")
            if embeds is not None and embeds.shape[1] > 1:
                self.prefills.append(tuple(embeds.shape[:2]))
            elif embeds is not None:
                self.decode_rows.add(embeds.shape[0])

        model.generate = generate  # an instance attribute over the class's method, removed on exit
        self._hook = model.model.language_model.register_forward_pre_hook(seen, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        del self.vlm.hf_model.generate
        self._hook.remove()


def test_n_candidates_come_from_one_generate_that_prefills_once(models, screen):
    cached, plain = models
    cached.caches.prefixes.clear()
    for vlm, prefills in ((plain, 1), (cached, 2), (cached, 1)):  # cold prefix cache: prefix, then body
        with _Counting(vlm) as seen:
            completion = vlm.generate(_messages(screen), SAMPLED)
        assert len(completion.candidates) == 4
        assert seen.generates == 1
        assert len(seen.prefills) == prefills and all(rows == 1 for rows, _ in seen.prefills)
        assert seen.decode_rows == {4}
        computed, reused = completion.extra["tiles_computed"], completion.extra["tiles_reused"]
        assert computed + reused == completion.extra["num_tiles"]  # each tile once, not once per sample
        assert len(completion.extra["candidate_tokens"]) == 4


def test_samples_are_repeatable_with_a_seed_and_differ_between_each_other(models, screen):
    _, plain = models
    first = plain.generate(_messages(screen), SAMPLED).candidates
    assert plain.generate(_messages(screen), SAMPLED).candidates == first
    assert len(set(first)) > 1
    other = GenerationConfig(max_new_tokens=8, temperature=1.0, n=4, seed=12)
    assert plain.generate(_messages(screen), other).candidates != first


def test_the_caches_do_not_change_the_samples(models, screen):
    cached, plain = models
    cached.generate(_messages(screen), SAMPLED)  # both caches warm
    assert cached.generate(_messages(screen), SAMPLED).candidates == plain.generate(
        _messages(screen), SAMPLED).candidates


def test_answer_logprobs_are_transformers_own_next_token_logprobs(models, screen):
    cached, plain = models
    messages = _messages(screen)
    ids, pixels, _ = plain.build_inputs(messages)
    with torch.inference_mode():
        logits = plain.hf_model(input_ids=torch.tensor([ids]), pixel_values=torch.from_numpy(pixels),
                                attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[0, -1]
    expected = torch.log_softmax(logits.float(), dim=-1)
    tokens = {answer: plain.tokenizer.encode(answer, add_special_tokens=False)[0] for answer in ("Yes", "No")}
    for vlm in (plain, cached):
        got = vlm.answer_logprobs(messages, ["Yes", "No"])
        for answer, token in tokens.items():
            assert got[answer] == pytest.approx(float(expected[token]), abs=1e-4)
    with pytest.raises(ValueError, match="different tokens"):
        plain.answer_logprobs(messages, ["Yes", "Yes"])


def test_a_vlm_critic_scores_in_0_1_and_its_complement_with_the_answers_swapped(models, screen):
    cached, plain = models
    observation = Observation(image=screen, geometry=Geometry.identity(*screen.size))
    click = Click(x=120, y=60)
    score = VLMCritic(plain).score(GOAL, observation, click, (120, 60))
    assert 0.0 <= score <= 1.0
    swapped = VLMCritic(plain, answers=("No", "Yes")).score(GOAL, observation, click, (120, 60))
    assert swapped == pytest.approx(1 - score, abs=1e-6)
    assert VLMCritic(plain).score(GOAL, observation, click, (120, 60)) == score  # deterministic
    assert VLMCritic(cached).score(GOAL, observation, click, (120, 60)) == pytest.approx(score, abs=1e-5)
    elsewhere = VLMCritic(plain).score(GOAL, observation, Click(x=700, y=400), (700, 400))
    assert elsewhere != score  # the drawn mark reaches the model


def test_a_policy_with_best_of_records_every_sample(models, screen):
    _, plain = models
    observation = Observation(image=screen, geometry=Geometry.identity(*screen.size))
    policy = Policy(plain, generation=GenerationConfig(max_new_tokens=8, seed=3), best_of=BestOfN(3))
    decision = policy.decide(GOAL, observation, [])
    assert len(decision.candidates) == 3
    assert [c["text"] for c in decision.candidates] == list(decision.completion.candidates)
    assert sum(c["picked"] for c in decision.candidates) == 1


@pytest.mark.browser
def test_run_with_best_of_records_the_candidates_of_each_step(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "from agent.cli import main; main()", "run", "click OK",
         "--url", DEMO_PAGE.as_uri(), "--model", "tiny", "--max-steps", "1", "--best-of", "3"],
        cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().rsplit("trajectory: ", 1)[1])
    run_dir = run_dir if run_dir.is_absolute() else tmp_path / run_dir
    record = json.loads((run_dir / "steps.jsonl").read_text().splitlines()[0])
    assert len(record["candidates"]) == 3
    assert sum(c["picked"] for c in record["candidates"]) == 1
    assert "3 candidates" in (run_dir / "report.html").read_text()
