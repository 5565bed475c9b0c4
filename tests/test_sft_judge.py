import pytest

from zerosearch.generation.hf import HFGenerator
from zerosearch.models import load_model
from zerosearch.rewards import contains_answer
from zerosearch.sft.judge import LLMJudge, RuleJudge, cohen_kappa, judge, parse_verdict


def test_cohen_kappa_matches_hand_computation():
    u, n = "useful", "noisy"
    a = [u, u, n, n, u, n, u, u, None, u]
    b = [u, n, n, n, u, u, u, u, u, None]
    # Shared items: the first 8. p_o = 6/8; a and b each say useful 5 times, noisy 3 times:
    # p_e = 5/8·5/8 + 3/8·3/8 = 34/64; κ = (48/64 − 34/64) / (30/64) = 7/15.
    assert cohen_kappa(a, b) == pytest.approx(7 / 15)


def test_cohen_kappa_edge_cases():
    assert cohen_kappa(["useful", "noisy"], ["useful", "noisy"]) == pytest.approx(1.0)
    assert cohen_kappa(["useful", "noisy"], ["noisy", "useful"]) == pytest.approx(-1.0)
    assert cohen_kappa(["useful"] * 3, ["useful"] * 3) == 1.0  # p_e = 1: trivial agreement, not 0/0
    assert cohen_kappa([None, "useful"], ["noisy", None]) is None
    with pytest.raises(ValueError):
        cohen_kappa(["useful"], ["useful", "noisy"])


def test_contains_answer_whole_words_after_normalization():
    assert contains_answer("Founded in 1911 by Ilse.", ["1911"])
    assert not contains_answer("Founded in 19111.", ["1911"])
    assert contains_answer("The Harrow Lake Observatory", ["harrow lake observatory"])
    assert not contains_answer("anything", [""])


def test_parse_verdict_is_robust():
    assert parse_verdict(" Useful.") == "useful"
    assert parse_verdict("noisy") == "noisy"
    assert parse_verdict("These are not useful at all") == "noisy"
    assert parse_verdict("Judgement: irrelevant") == "noisy"
    assert parse_verdict("Yes") == "useful"
    assert parse_verdict("I cannot tell") is None
    assert parse_verdict("") is None


def _record(docs, answers=("1911",)):
    return {"question": "When?", "golden_answers": list(answers), "documents": [{"text": t} for t in docs]}


class _Fixed:
    name = "fixed"

    def __init__(self, labels):
        self.labels = labels

    def label(self, records):
        return self.labels


def test_judge_labels_in_place_and_reports_agreement():
    records = [_record(["it opened in 1911"]), _record(["a lake"]), _record(["1911 again"])]
    stats = judge(records, [RuleJudge(), _Fixed(["useful", None, "noisy"])])
    assert [r["label"] for r in records] == ["useful", "noisy", "useful"]
    assert records[1]["labels"] == {"rule": "noisy", "fixed": None}
    assert stats["judges"]["rule"] == {"useful": 2, "noisy": 1, "None": 0}
    assert stats["agreement"]["compared"] == 2 and stats["agreement"]["raw"] == 0.5


class _Recording(HFGenerator):
    """A real generator that keeps the prompts it was given."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.prompts: list[str] = []

    def generate(self, prompts, **kw):
        self.prompts += prompts
        return super().generate(prompts, **kw)


def test_llm_judge_asks_about_a_hop_with_the_hops_own_answer():
    generator = _Recording(*load_model("tiny-random"))
    question = "Where was the founder of Vell Press born?"
    docs = [{"text": "Ann founded Vell Press."}]
    hop = {"question": question, "golden_answers": ["Oslo"], "query": "Who founded Vell Press?"}
    records = [hop | {"query_answers": ["Ann"], "documents": docs}, hop | {"query": question, "documents": docs}]
    labels = LLMJudge(generator, max_new_tokens=2).label(records)
    assert len(labels) == 2 and set(labels) <= {"useful", "noisy", None}
    first, second = generator.prompts
    # the first hop is judged as the rule judges it: on its sub-question and the bridge, not the final answer
    assert '"Who founded Vell Press?"' in first and "Ann" in first and "Oslo" not in first
    assert f'"{question}"' in second and "Oslo" in second
