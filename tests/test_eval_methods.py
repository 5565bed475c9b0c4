"""The evaluated methods, with a scripted policy (a real Generator that answers by rule), a real BM25 index
and the real rollout loop; and one tiny-random pass for the batched transformers path."""

import json

import pytest

from zerosearch import prompts
from zerosearch.config import RolloutConfig
from zerosearch.data.formats import QAExample
from zerosearch.engines.bm25 import BM25Engine
from zerosearch.errors import UserError
from zerosearch.eval import evaluate
from zerosearch.eval.methods import single_shot_answer
from zerosearch.generation.base import Completion, Generator

FIELDS = {
    "id",
    "question",
    "golden_answers",
    "data_source",
    "prediction",
    "em",
    "cover_em",
    "f1",
    "n_searches",
    "answered",
    "trajectory",
}

CORPUS = [
    {"id": "0", "contents": "Zorland\nZorland is a country. The capital of Zorland is Velm."},
    {"id": "1", "contents": "Brastor\nBrastor is a river that flows through the city of Quenby."},
    {"id": "2", "contents": "Aldo Pike\nAldo Pike is a painter born in Quenby in 1901."},
]
EXAMPLES = [
    QAExample("q0", "What is the capital of Zorland?", ["Velm"], "geo"),
    QAExample("q1", "Which city does the Brastor flow through?", ["Quenby"], "geo"),
    QAExample("q2", "In which year was Aldo Pike born?", ["1901"], "people"),
]


class Scripted(Generator):
    """Answers by rule from the decoded prompt: `reply(text) -> completion text`; stop strings honoured."""

    name = "scripted"

    def __init__(self, reply, tokenizer=None):
        self.reply, self.tokenizer, self.prompts = reply, tokenizer, []

    def generate(self, prompts_, *, max_new_tokens=256, stop=(), temperature=1.0, top_p=1.0, seed=None):
        out = []
        for p in prompts_:
            text = p if isinstance(p, str) else self.tokenizer.decode(p)
            self.prompts.append(text)
            completion = self.reply(text)
            hit = next((s for s in stop if s in completion), None)
            if hit:
                completion = completion[: completion.index(hit) + len(hit)]
            ids = self.tokenizer(completion, add_special_tokens=False).input_ids if self.tokenizer else []
            out.append(Completion(completion, ids, None, "stop" if hit else "eos", hit))
        return out


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    (d / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CORPUS))
    return BM25Engine(d / "corpus.jsonl", index_dir=d / "index")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from zerosearch.models import bundled_dir

    return AutoTokenizer.from_pretrained(bundled_dir("smollm2-135m"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer> Velm </answer>", ("Velm", True)),
        ("<answer>a</answer> then <answer> b </answer>", ("b", True)),  # the last block
        ("Velm\nbecause it is the capital", ("Velm", False)),  # no tags: the first line
        ("\n  Answer: Velm.\nmore", ("Velm.", False)),  # a leading "Answer:" is dropped
        ("<think>the capital\nis Velm</think>\nVelm", ("Velm", False)),  # thinking is skipped
        ("<answer> Velm", ("Velm", False)),  # an unclosed tag: the line, without the tag
        ("  \n <think></think> ", (None, False)),
    ],
)
def test_single_shot_answer(text, expected):
    assert single_shot_answer(text) == expected


def test_direct_scores_each_question_and_uses_the_direct_prompt():
    answers = {"Zorland": "<answer> Velm </answer>", "Brastor": "The Quenby city", "Aldo": "<answer>1902</answer>"}
    gen = Scripted(lambda p: next(v for k, v in answers.items() if k in p))
    records = evaluate("direct", gen, EXAMPLES, batch_size=2)
    assert [set(r) for r in records] == [FIELDS] * 3
    assert [r["id"] for r in records] == ["q0", "q1", "q2"]
    assert [r["prediction"] for r in records] == ["Velm", "The Quenby city", "1902"]
    assert [r["em"] for r in records] == [1.0, 0.0, 0.0]
    assert [r["cover_em"] for r in records] == [1.0, 1.0, 0.0]
    assert records[1]["f1"] == pytest.approx(2 / 3)  # "quenby city" vs "quenby": P=1/2, R=1
    assert [r["answered"] for r in records] == [True, False, True]
    assert [r["n_searches"] for r in records] == [0, 0, 0]
    assert gen.prompts[0] == prompts.DIRECT_PROMPT.format(question=EXAMPLES[0].question)  # no chat template: none


def test_cot_uses_the_cot_prompt():
    gen = Scripted(lambda p: "<think>Zorland's capital is Velm</think><answer>Velm</answer>")
    records = evaluate("cot", gen, EXAMPLES[:1])
    assert gen.prompts == [prompts.COT_PROMPT.format(question=EXAMPLES[0].question)]
    assert records[0]["em"] == 1.0 and records[0]["trajectory"]["response"].startswith("<think>")


def test_rag_retrieves_once_with_the_question(engine):
    # The scripted reader answers with the title of the first retrieved document.
    gen = Scripted(lambda p: "<answer>" + p.split("Doc 1(Title: ")[1].split(")")[0] + "</answer>")
    before = engine.meter.queries
    records = evaluate("rag", gen, EXAMPLES, engine=engine, k=2)
    assert engine.meter.queries - before == 3
    assert [r["n_searches"] for r in records] == [1, 1, 1]
    assert [len(r["trajectory"]["documents"]) for r in records] == [2, 2, 2]
    assert [r["prediction"] for r in records] == ["Zorland", "Brastor", "Aldo Pike"]
    assert "Question: What is the capital of Zorland?" in gen.prompts[0]


def _agent_reply(p):
    """Search for the question's subject, then answer with the last word of the first document."""
    if "<information>Doc" not in p:  # the prompts mention the tag; an observation starts with a document
        subject = {"Zorland": "Zorland capital", "Brastor": "Brastor river", "Aldo": "Aldo Pike born"}
        return "<think>I should search.</think><search> " + next(v for k, v in subject.items() if k in p) + " </search>"
    doc = p.rsplit("<information>Doc", 1)[1].split("\n")[0]
    return "<answer> " + doc.rstrip(".").split()[-1].rstrip(".") + " </answer>"


@pytest.mark.parametrize(
    "method, template", [("agent", prompts.AGENT_PROMPT), ("policy", prompts.POLICY_PROMPT)], ids=["agent", "policy"]
)
def test_multi_turn_methods_go_through_the_rollout(method, template, engine, tokenizer):
    gen = Scripted(_agent_reply, tokenizer)
    records = evaluate(method, gen, EXAMPLES, engine=engine, rollout_cfg=RolloutConfig(max_turns=2), batch_size=2)
    assert [r["prediction"] for r in records] == ["Velm", "Quenby", "1901"]
    assert [r["em"] for r in records] == [1.0, 1.0, 1.0]
    assert [r["n_searches"] for r in records] == [1, 1, 1]
    assert all(r["answered"] for r in records)
    t = records[0]["trajectory"]
    assert t["stop_reason"] == "answer" and t["searches"][0]["query"] == "Zorland capital"
    assert "loss_mask" not in t and "response_ids" not in t  # token-level fields stay out of the results
    first = gen.prompts[0]
    assert template.split("{question}")[0][:60] in first and "<|im_start|>user" in first  # chat template applied


def test_a_policy_that_never_answers_counts_as_unanswered(engine, tokenizer):
    gen = Scripted(lambda p: "I am not sure.", tokenizer)
    (record,) = evaluate("agent", gen, EXAMPLES[:1], engine=engine, rollout_cfg=RolloutConfig(max_turns=1))
    assert record["prediction"] is None and record["answered"] is False
    assert record["em"] == record["f1"] == 0.0 and record["trajectory"]["stop_reason"] == "max_turns"


def test_bad_calls_are_user_errors(engine):
    gen = Scripted(lambda p: "")
    with pytest.raises(UserError, match="unknown method 'react'"):
        evaluate("react", gen, EXAMPLES)
    with pytest.raises(UserError, match="needs a search engine"):
        evaluate("rag", gen, EXAMPLES)
    with pytest.raises(UserError, match="batch size"):
        evaluate("direct", gen, EXAMPLES, batch_size=0)


def test_tiny_random_model_runs_batched_and_greedy():
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    gen = HFGenerator(*load_model("tiny-random"))
    one_batch = evaluate("direct", gen, EXAMPLES, batch_size=3)
    one_by_one = evaluate("direct", gen, EXAMPLES, batch_size=1)
    assert [r["trajectory"]["response"] for r in one_batch] == [r["trajectory"]["response"] for r in one_by_one]
    assert all(set(r) == FIELDS for r in one_batch)
