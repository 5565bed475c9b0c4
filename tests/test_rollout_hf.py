"""A rollout through the real transformers back-end on tiny-random: masks, KV reuse across turns, log-probs."""

import pytest
import torch
from test_rollout_masks import RecordingEngine, check_invariants

from zerosearch.config import RolloutConfig
from zerosearch.data.formats import QAExample
from zerosearch.generation.hf import HFGenerator
from zerosearch.models import load_model
from zerosearch.rollout import run_rollouts

EXAMPLES = [QAExample("a", "Where is Paris", ["France"]), QAExample("b", "Who painted the Guernica mural", ["Picasso"])]
# Random weights never close a tag: every turn runs out of its 6 tokens, gets the invalid-action message and
# goes on, so each trajectory has 3 turns (2 that may search, then the answer-only one) with environment text
# between them.
CFG = RolloutConfig(max_turns=2, max_turn_tokens=6, temperature=1.0, top_p=1.0)


@pytest.fixture(scope="module")
def gen():
    return HFGenerator(*load_model("tiny-random"))


def test_rollout_with_tiny_random_is_seeded_and_its_logprobs_match_a_full_forward(gen):
    trajs = run_rollouts(gen, RecordingEngine(), EXAMPLES, CFG, n=2, seed=5)
    again = run_rollouts(gen, RecordingEngine(), EXAMPLES, CFG, n=2, seed=5)
    assert [t.response_ids for t in trajs] == [t.response_ids for t in again]
    for t in trajs:
        check_invariants(t)
        assert t.n_turns == 3 and t.stop_reason == "max_tokens" and sum(t.loss_mask) == 18
        # The KV cache was reused across turns; one plain forward pass over the whole sequence must agree.
        ids = torch.tensor([t.prompt_ids + t.response_ids])
        with torch.no_grad():
            lp = torch.log_softmax(gen.model(input_ids=ids).logits[0, len(t.prompt_ids) - 1 : -1].float(), -1)
        expected = lp.gather(1, torch.tensor(t.response_ids)[:, None])[:, 0]
        policy = torch.tensor(t.loss_mask, dtype=torch.bool)
        assert torch.allclose(torch.tensor(t.logprobs)[policy], expected[policy], atol=1e-4)


def test_greedy_rollout_is_the_same_with_and_without_kv_reuse(gen):
    with_reuse = run_rollouts(gen, RecordingEngine(), EXAMPLES, CFG, greedy=True)
    gen.can_reuse = False
    try:
        without = run_rollouts(gen, RecordingEngine(), EXAMPLES, CFG, greedy=True)
    finally:
        gen.can_reuse = True
    assert [t.response_ids for t in with_reuse] == [t.response_ids for t in without]
