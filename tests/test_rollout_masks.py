"""The rollout state machine with a scripted policy (replays fixed turns, tokenized by the real SmolLM2
tokenizer) and a recording engine: masks checked token by token against pieces built by hand."""

import pytest

from zerosearch import prompts
from zerosearch.config import RolloutConfig
from zerosearch.data.formats import QAExample
from zerosearch.engines.base import Document, EngineError, PartialResults, SearchEngine
from zerosearch.generation.base import Completion, Generator, chat_prompt, encode_text
from zerosearch.models import load_model
from zerosearch.rollout import run_rollouts


@pytest.fixture(scope="module")
def tok():
    return load_model("tiny-random")[1]


class ScriptedPolicy(Generator):
    """Replays `script[question][turn]`, cut after the first stop string as a real back-end would."""

    name = "scripted"

    def __init__(self, tokenizer, script: dict[str, list[str]]):
        self.tokenizer, self.script = tokenizer, script
        self.turn = {q: 0 for q in script}
        self.calls = []

    def generate(self, prompts_, *, max_new_tokens=256, stop=(), temperature=1.0, top_p=1.0, seed=None):
        self.calls.append(len(prompts_))
        out = []
        for ids in prompts_:
            text = self.tokenizer.decode(ids)
            q = next(q for q in self.script if f"Question: {q}" in text)
            reply = self.script[q][self.turn[q]]
            self.turn[q] += 1
            ends = [(reply.find(s) + len(s), s) for s in stop if s in reply]
            hit = min(ends)[1] if ends else None
            reply = reply[: min(ends)[0]] if ends else reply
            ids = self.tokenizer(reply, add_special_tokens=False).input_ids
            finish = "stop" if hit else "eos"
            if len(ids) > max_new_tokens:
                ids, hit, finish = ids[:max_new_tokens], None, "length"
            out.append(Completion(self.tokenizer.decode(ids), ids, [-0.25] * len(ids), finish, hit))
        return out


class RecordingEngine(SearchEngine):
    """Documents that name the question and answers the request carried, so a mix-up shows in the text."""

    name = "recording"

    def __init__(self, words_per_doc: int = 3):
        super().__init__()
        self.calls = []
        self.words = words_per_doc

    def _search(self, requests):
        self.calls.append(list(requests))
        return [
            [
                Document(text=" ".join([f"{r.question}|{','.join(r.answers)}"] * self.words), title=f"T{i}")
                for i in range(r.k)
            ]
            for r in requests
        ]


def ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def obs_piece(tok, docs):
    return (
        ids(tok, prompts.OBSERVATION_OPEN)
        + ids(tok, prompts.format_documents(docs))
        + ids(tok, prompts.OBSERVATION_CLOSE)
    )


def docs_for(q, golds, k, words=3):
    return [Document(text=" ".join([f"{q}|{','.join(golds)}"] * words), title=f"T{i}") for i in range(k)]


def check_invariants(t):
    assert len(t.loss_mask) == len(t.response_ids) == len(t.logprobs)
    assert sum(s.n_tokens for s in t.segments) == len(t.response_ids)
    assert sum(s.n_tokens for s in t.segments if s.role == "policy") == sum(t.loss_mask)
    pos = 0
    for s in t.segments:
        assert set(t.loss_mask[pos : pos + s.n_tokens]) <= {1 if s.role == "policy" else 0}
        if s.role == "env":
            assert all(x == 0.0 for x in t.logprobs[pos : pos + s.n_tokens])
            assert s.text.startswith((prompts.OBSERVATION_OPEN, prompts.INVALID_ACTION))
        else:
            assert "<information>" not in s.text
        pos += s.n_tokens


def run(tok, script, examples, engine=None, **kw):
    cfg = RolloutConfig(**{"max_turns": 4, **kw.pop("cfg", {})})
    policy = ScriptedPolicy(tok, script)
    engine = engine or RecordingEngine()
    trajs = run_rollouts(policy, engine, examples, cfg, k=2, **kw)
    for t in trajs:
        check_invariants(t)
    return trajs, policy, engine


Q1 = QAExample("q1", "Who wrote Hamlet", ["Shakespeare"])


def test_answer_at_once(tok):
    (t,), policy, engine = run(
        tok, {Q1.question: ["<think>easy</think> <answer> William Shakespeare </answer> junk"]}, [Q1]
    )
    turn = "<think>easy</think> <answer> William Shakespeare </answer>"
    assert t.response_ids == ids(tok, turn) and t.loss_mask == [1] * len(t.response_ids)
    assert t.prompt_ids == encode_text(tok, chat_prompt(tok, prompts.policy_prompt(Q1.question)))
    assert t.stop_reason == "answer" and t.answer == "William Shakespeare" and t.n_turns == 1
    assert t.reward == pytest.approx(2 / 3) and t.em == 0.0  # F1 of 2 tokens vs 1: 2*(1/2*1)/(1.5)
    assert engine.calls == [] and t.logprobs == [-0.25] * len(t.response_ids)


def test_search_then_answer(tok):
    turns = ["I need facts. <search> hamlet author </search>", " <answer> Shakespeare </answer>"]
    (t,), _, engine = run(tok, {Q1.question: turns}, [Q1])
    docs = docs_for(Q1.question, Q1.golden_answers, 2)
    p1, env, p2 = ids(tok, turns[0]), obs_piece(tok, docs), ids(tok, turns[1])
    assert t.response_ids == p1 + env + p2
    assert t.loss_mask == [1] * len(p1) + [0] * len(env) + [1] * len(p2)
    assert [s.role for s in t.segments] == ["policy", "env", "policy"]
    assert t.segments[1].text == prompts.observation(docs)
    assert len(engine.calls) == 1 and engine.calls[0][0].query == "hamlet author"
    assert t.searches[0].query == "hamlet author" and t.searches[0].mode == "useful"
    assert t.searches[0].documents == [d.to_dict() for d in docs]
    assert (t.stop_reason, t.answer, t.em, t.n_turns) == ("answer", "Shakespeare", 1.0, 2)


def test_invalid_then_answer(tok):
    turns = ["I think it is Shakespeare.", "<answer>Shakespeare</answer>"]
    (t,), _, engine = run(tok, {Q1.question: turns}, [Q1])
    p1, env, p2 = ids(tok, turns[0]), ids(tok, prompts.INVALID_ACTION), ids(tok, turns[1])
    assert t.response_ids == p1 + env + p2
    assert t.loss_mask == [1] * len(p1) + [0] * len(env) + [1] * len(p2)
    assert t.segments[1].text == prompts.INVALID_ACTION and engine.calls == []
    assert t.stop_reason == "answer" and t.n_turns == 2


def test_max_turns_and_no_engine_call_on_the_answer_only_turn(tok):
    turns = [f"<search> q{i} </search>" for i in range(3)]
    (t,), policy, engine = run(tok, {Q1.question: turns}, [Q1], cfg={"max_turns": 2})
    docs = docs_for(Q1.question, Q1.golden_answers, 2)
    p = [ids(tok, x) for x in turns]
    env = obs_piece(tok, docs)
    assert t.response_ids == p[0] + env + p[1] + env + p[2]
    assert t.loss_mask == [1] * len(p[0]) + [0] * len(env) + [1] * len(p[1]) + [0] * len(env) + [1] * len(p[2])
    assert [r.query for call in engine.calls for r in call] == ["q0", "q1"]  # the third search is never sent
    assert (t.stop_reason, t.answer, t.reward, t.n_turns) == ("max_turns", None, 0.0, 3)
    assert len(t.searches) == 2


def test_observation_truncation_keeps_the_information_frame(tok):
    turns = ["<search> a </search>", "<search> b </search>", "<answer> x </answer>"]
    engine = RecordingEngine(words_per_doc=40)
    (t,), _, _ = run(tok, {Q1.question: turns}, [Q1], engine=engine, cfg={"max_obs_tokens": 150})
    docs = docs_for(Q1.question, Q1.golden_answers, 2, words=40)
    open_, close, body = (
        ids(tok, prompts.OBSERVATION_OPEN),
        ids(tok, prompts.OBSERVATION_CLOSE),
        ids(tok, prompts.format_documents(docs)),
    )
    assert len(open_) + len(body) + len(close) > 150  # the full observation would not fit
    first = open_ + body[: 150 - len(open_) - len(close)] + close
    p = [ids(tok, x) for x in turns]
    # the first observation fills the budget; the second no longer fits even empty: context is full
    assert t.response_ids == p[0] + first + p[1]
    assert t.loss_mask == [1] * len(p[0]) + [0] * 150 + [1] * len(p[1])
    assert t.segments[1].text.startswith(prompts.OBSERVATION_OPEN) and t.segments[1].text.endswith(
        prompts.OBSERVATION_CLOSE
    )
    assert t.stop_reason == "context_full"


def test_a_policy_written_information_block_is_cut_from_the_policy_turn(tok):
    turns = ["Let me recall. <information> Doc 1: made up </information>", "<answer> Shakespeare </answer>"]
    (t,), _, engine = run(tok, {Q1.question: turns}, [Q1])
    kept = t.segments[0].text
    assert "<information" not in kept and "Let me recall." in kept
    assert t.segments[1].text == prompts.INVALID_ACTION and t.stop_reason == "answer" and engine.calls == []


def test_a_batch_that_finishes_at_different_turns_keeps_each_trajectory_its_own_question(tok):
    ex = [
        QAExample("a", "Where is Paris", ["France"]),
        QAExample("b", "Who painted Guernica", ["Picasso"]),
        QAExample("c", "What is H2O", ["water"]),
    ]
    script = {
        "Where is Paris": ["<answer> France </answer>"],  # done at turn 1
        "Who painted Guernica": ["hmm", "<search> guernica painter </search>", "<answer> Picasso </answer>"],
        "What is H2O": [
            "<search> h2o </search>",
            "no idea",
            "<search> water formula </search>",
            "<answer> water </answer>",
        ],
    }
    trajs, policy, engine = run(tok, script, ex, n=1)
    assert [t.stop_reason for t in trajs] == ["answer"] * 3 and [t.n_turns for t in trajs] == [1, 3, 4]
    assert policy.calls == [3, 2, 2, 1]  # finished trajectories leave the batch
    # one engine call per turn with searches, each request carrying its own trajectory's question and answers
    assert [[(r.query, r.question, r.answers) for r in call] for call in engine.calls] == [
        [("h2o", "What is H2O", ["water"])],
        [("guernica painter", "Who painted Guernica", ["Picasso"])],
        [("water formula", "What is H2O", ["water"])],
    ]
    for t in trajs:
        for s in t.segments:
            if s.text.startswith(prompts.OBSERVATION_OPEN):
                assert f"{t.question}|{t.golden_answers[0]}" in s.text


def test_curriculum_draws_are_per_call_seeded_and_recorded(tok):
    ex = [QAExample(f"x{i}", f"question number {i}", ["a"]) for i in range(6)]
    script = {e.question: ["<search> s </search>", "<search> t </search>", "<answer> a </answer>"] for e in ex}
    modes = []
    for seed in (0, 0, 1):
        trajs, _, engine = run(tok, {k: list(v) for k, v in script.items()}, ex, p_noisy=0.5, seed=seed)
        sent = [r.mode for call in engine.calls for r in call]
        assert sent == [s.mode for i in range(2) for t in trajs for s in t.searches[i : i + 1]]
        modes.append(sent)
    assert modes[0] == modes[1] and modes[0] != modes[2] and set(modes[0]) == {"useful", "noisy"}
    trajs, _, engine = run(tok, {k: list(v) for k, v in script.items()}, ex, p_noisy=0.0)
    assert {r.mode for call in engine.calls for r in call} == {"useful"}


def test_n_samples_are_grouped_consecutively(tok):
    ex = [QAExample("a", "Where is Paris", ["France"]), QAExample("b", "What is H2O", ["water"])]
    script = {"Where is Paris": ["<answer> France </answer>"] * 3, "What is H2O": ["<answer> ice </answer>"] * 3}
    trajs, _, _ = run(tok, script, ex, n=3)
    assert [t.id for t in trajs] == ["a"] * 3 + ["b"] * 3
    assert [t.reward for t in trajs] == [1.0] * 3 + [0.0] * 3


def test_context_budget_caps_generation(tok):
    long_turn = "word " * 400
    (t,), _, _ = run(tok, {Q1.question: [long_turn]}, [Q1], cfg={"max_context_tokens": 260, "max_turn_tokens": 500})
    assert len(t.prompt_ids) + len(t.response_ids) == 260 and t.stop_reason == "context_full"


def test_per_turn_token_limit_gives_an_invalid_turn_then_max_tokens_on_the_last(tok):
    turns = ["one two three four five six seven eight nine ten"] * 2
    (t,), _, _ = run(tok, {Q1.question: turns}, [Q1], cfg={"max_turns": 1, "max_turn_tokens": 4})
    p = ids(tok, turns[0])[:4]
    inv = ids(tok, prompts.INVALID_ACTION)
    assert t.response_ids == p + inv + p and t.loss_mask == [1] * 4 + [0] * len(inv) + [1] * 4
    assert t.stop_reason == "max_tokens" and t.n_turns == 2


def test_max_turns_counts_searching_turns_then_one_answer_turn_as_the_reference(tok):
    turns = ["<search> a </search>", "<search> b </search>", "<answer> Shakespeare </answer>"]
    (t,), _, engine = run(tok, {Q1.question: turns}, [Q1], cfg={"max_turns": 2})
    assert [r.query for call in engine.calls for r in call] == ["a", "b"]
    assert (t.stop_reason, t.answer, t.n_turns, len(t.searches)) == ("answer", "Shakespeare", 3, 2)
    (t,), _, engine = run(tok, {Q1.question: ["<search> a </search>"]}, [Q1], cfg={"max_turns": 0})
    assert (t.stop_reason, t.n_turns, engine.calls) == ("max_turns", 1, [])  # 0: the answer-only turn alone


def test_the_trajectory_records_the_reward_that_trains_it(tok):
    script = {Q1.question: ["<answer> William Shakespeare </answer>"]}
    rewards = {}
    for kw in ({}, {"reward": "em"}, {"reward": "cover_em"}, {"reward": "f1", "format_bonus": 0.5}):
        (t,), _, _ = run(tok, {q: list(v) for q, v in script.items()}, [Q1], **kw)
        rewards[tuple(kw.values())] = t.reward
        assert t.em == 0.0
    assert rewards == {
        (): pytest.approx(2 / 3),
        ("em",): 0.0,
        ("cover_em",): 1.0,
        ("f1", 0.5): pytest.approx(2 / 3 + 0.5),
    }


def test_documents_never_score_a_trajectory_that_did_not_answer(tok):
    class AnswerInDocs(SearchEngine):
        def _search(self, requests):
            return [[Document(text="<answer> Shakespeare </answer>")] for _ in requests]

    turns = ["<search> a </search>", "<search> b </search>"]
    (t,), _, _ = run(tok, {Q1.question: turns}, [Q1], engine=AnswerInDocs(), cfg={"max_turns": 1})
    assert t.stop_reason == "max_turns" and (t.reward, t.em) == (0.0, 0.0)


class FlakyEngine(RecordingEngine):
    """Fails every call that holds the query `bad`, and the first `outages` calls of all."""

    def __init__(self, outages: int = 0):
        super().__init__()
        self.outages, self.tries = outages, 0

    def _search(self, requests):
        self.tries += 1
        if self.tries <= self.outages or any(r.query == "bad" for r in requests):
            raise EngineError("search server unreachable")
        return super()._search(requests)


def test_a_failed_search_ends_its_own_trajectory_not_the_run(tok):
    ex = [QAExample("a", "Where is Paris", ["France"]), QAExample("b", "Who painted Guernica", ["Picasso"])]
    script = {
        "Where is Paris": ["<search> bad </search>", "<answer> France </answer>"],
        "Who painted Guernica": ["<search> guernica </search>", "<answer> Picasso </answer>"],
    }
    engine = FlakyEngine()
    (a, b), _, _ = run(tok, script, ex, engine=engine, cfg={"search_retries": 1})
    assert (a.stop_reason, a.searches, a.reward) == ("search_error", [], 0.0)
    assert [s.role for s in a.segments] == ["policy"]
    assert (b.stop_reason, b.reward, [s.query for s in b.searches]) == ("answer", 1.0, ["guernica"])
    assert engine.tries == 4  # the batch twice (1 retry), then each request once


def test_a_short_outage_is_retried(tok):
    turns = ["<search> hamlet </search>", "<answer> Shakespeare </answer>"]
    engine = FlakyEngine(outages=2)
    (t,), _, _ = run(tok, {Q1.question: turns}, [Q1], engine=engine, cfg={"search_retries": 2})
    assert t.stop_reason == "answer" and len(t.searches) == 1 and engine.tries == 3
    engine = FlakyEngine(outages=2)
    (t,), _, _ = run(tok, {Q1.question: list(turns)}, [Q1], engine=engine, cfg={"search_retries": 1})
    assert t.stop_reason == "search_error" and engine.tries == 2


class PartlyFailing(RecordingEngine):
    """Answers every request but `bad` in the same call, reporting the rest as PartialResults (the web engine)."""

    def _search(self, requests):
        results = super()._search(requests)
        results = [None if r.query == "bad" else docs for r, docs in zip(requests, results)]
        if any(docs is None for docs in results):
            raise PartialResults("bad failed", results)
        return results


def test_a_partly_failed_search_retries_only_the_failed_request(tok):
    ex = [QAExample("a", "Where is Paris", ["France"]), QAExample("b", "Who painted Guernica", ["Picasso"])]
    script = {
        "Where is Paris": ["<search> bad </search>", "<answer> France </answer>"],
        "Who painted Guernica": ["<search> guernica </search>", "<answer> Picasso </answer>"],
    }
    engine = PartlyFailing()
    (a, b), _, _ = run(tok, script, ex, engine=engine, cfg={"search_retries": 2})
    assert a.stop_reason == "search_error" and (b.stop_reason, b.reward) == ("answer", 1.0)
    assert [[q.query for q in call] for call in engine.calls] == [["bad", "guernica"], ["bad"], ["bad"]]
