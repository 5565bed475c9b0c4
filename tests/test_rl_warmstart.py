"""The warm start: oracle demonstrations through the real rollout and BM25 over the mini-world, rejection of
unfaithful ones, and a short SFT on tiny-random that lowers the demonstrations' NLL and saves a loadable model."""

import json
from dataclasses import replace

import pytest
import torch

from zerosearch import prompts
from zerosearch.config import EngineConfig, RLConfig, RolloutConfig
from zerosearch.data import load_questions
from zerosearch.engines import make_engine
from zerosearch.errors import UserError
from zerosearch.models import load_model
from zerosearch.rewards import normalize_answer
from zerosearch.rl.policy import build_actor
from zerosearch.rl.warmstart import demonstrations, policy_nll, script_for, sft, warm_start
from zerosearch.rollout import read_jsonl

CFG = RolloutConfig(max_turns=3, max_turn_tokens=96, max_obs_tokens=600, max_context_tokens=1536)


@pytest.fixture(scope="module")
def tok():
    return load_model("tiny-random")[1]


@pytest.fixture(scope="module")
def bm25():
    return make_engine(EngineConfig(name="bm25", corpus="mini-world:corpus", k=3))


@pytest.fixture(scope="module")
def questions():
    qs = load_questions("mini-world:train")
    by_type = {}
    for q in qs:
        by_type.setdefault(q.meta["type"], q)
    return [by_type["single_hop"], by_type["two_hop"], by_type["comparison"]]


def ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def test_demonstrations_follow_the_protocol_with_exact_masks(tok, bm25, questions):
    kept, rejected = demonstrations(tok, bm25, questions, CFG, k=3)
    assert rejected == 0 and [t.question for t in kept] == [q.question for q in questions]
    for t, q in zip(kept, questions):
        hops, turns = q.meta["hops"], script_for(q)
        assert [s.role for s in t.segments] == ["policy", "env"] * len(hops) + ["policy"]
        assert [s.text for s in t.segments if s.role == "policy"] == turns
        assert all("<search>" in s for s in turns[:-1]) and f"<answer> {q.golden_answers[0]} </answer>" in turns[-1]
        assert [s.query for s in t.searches] == [h["question"] for h in hops]  # the bridge hop names its entity
        pos = 0
        for s in t.segments:
            piece = t.response_ids[pos : pos + s.n_tokens]
            if s.role == "policy":
                assert piece == ids(tok, s.text) and t.loss_mask[pos : pos + s.n_tokens] == [1] * s.n_tokens
            else:
                assert s.text.startswith(prompts.OBSERVATION_OPEN) and set(t.loss_mask[pos : pos + s.n_tokens]) == {0}
            pos += s.n_tokens
        assert pos == len(t.response_ids)
        for h, obs in zip(hops, [s.text for s in t.segments if s.role == "env"]):
            assert normalize_answer(h["answer"]) in normalize_answer(obs)
        assert (t.stop_reason, t.answer, t.em) == ("answer", q.golden_answers[0], 1.0)


def test_a_demonstration_whose_observation_misses_the_hop_answer_is_rejected(tok, bm25, questions):
    single = questions[0]
    wrong_hop = [{**single.meta["hops"][0], "answer": "Qwixotlan"}]  # no passage names it
    bad = replace(
        single,
        id="bad",
        question=single.question.replace("?", " (really)?"),
        golden_answers=["Qwixotlan"],
        meta={**single.meta, "hops": wrong_hop},
    )
    kept, rejected = demonstrations(tok, bm25, [bad, questions[1]], CFG, k=3)
    assert rejected == 1 and [t.question for t in kept] == [questions[1].question]
    # cut observations to nothing but the frame: every demonstration now misses its answer
    kept, rejected = demonstrations(tok, bm25, questions, replace(CFG, max_obs_tokens=12), k=3)
    assert kept == [] and rejected == 3


def test_sft_lowers_the_nll_of_the_demonstrations_and_saves_a_loadable_model(tmp_path):
    lines = []
    out = warm_start(
        "tiny-random",
        tmp_path / "warm",
        n_examples=6,
        steps=8,
        lr=3e-3,
        batch_size=3,
        k=3,
        seed=0,
        rollout_cfg=CFG,
        micro_batch=2,
        log=lines.append,
    )
    stats = json.loads((out / "warmstart.json").read_text())
    # a line per stage and per SFT step: minutes of silence otherwise on a CPU
    assert [line for line in lines if "SFT step" in line][-1].startswith("warm start: SFT step 8/8")
    assert lines[0].startswith("warm start: 6 demonstrations kept")
    demos = read_jsonl(out / "demonstrations.jsonl")
    assert stats["demonstrations"] == len(demos) == 6
    model, tokenizer = load_model(str(out))
    base, _ = load_model("tiny-random")
    sample = demos[: stats["nll_sample"]]
    assert len(sample) == 3  # batch_size
    before, after = (
        policy_nll(_lm(base), sample, tokenizer.pad_token_id),
        policy_nll(_lm(model), sample, tokenizer.pad_token_id),
    )
    assert before == pytest.approx(stats["nll_before"], rel=1e-4) and after == pytest.approx(
        stats["nll_after"], rel=1e-4
    )
    assert after < before - 1.0  # random weights: ~ln(49152) = 10.8 nats per token before
    with pytest.raises(UserError, match="already exists"):
        warm_start("tiny-random", out, n_examples=1, steps=1, rollout_cfg=CFG)


def _lm(model):
    from zerosearch.rl.policy import ActorCritic

    return ActorCritic(model, with_value_head=False)


def test_gradient_checkpointing_recomputes_the_blocks_for_the_same_weights(tok, bm25, questions):
    demos, _ = demonstrations(tok, bm25, questions, CFG, 3, len(questions))
    runs = {}
    for checkpointing in (False, True):
        model, _ = load_model("tiny-random")
        actor, _ = build_actor(model, RLConfig(kl_coef=0.0))
        calls = []
        # Inside the block (transformers checkpoints a block's `forward`, keeping the block's own hooks outside), and
        # before the call: the recompute stops once it has the saved tensors, inside the MLP.
        model.model.layers[0].mlp.register_forward_pre_hook(lambda *args, calls=calls: calls.append(1))
        sft(
            actor,
            demos,
            tok.pad_token_id,
            steps=2,
            lr=1e-3,
            batch_size=3,
            micro_batch=1,
            seed=0,
            gradient_checkpointing=checkpointing,
        )
        renamed = hasattr(model, "is_activation_checkpointing")  # transformers 5.x (the old name warns)
        checkpointed = model.is_activation_checkpointing if renamed else model.is_gradient_checkpointing
        assert not model.training and not checkpointed  # as loaded, for what follows
        runs[checkpointing] = len(calls), model.state_dict()
    # a block's forward runs again in the backward pass, once per micro-batch
    assert runs[True][0] == 2 * runs[False][0] == 2 * 2 * 3
    for name, weight in runs[False][1].items():
        torch.testing.assert_close(runs[True][1][name], weight)
