"""Metrics: bootstrap CIs per data source, the average over datasets, and paired differences."""

import pytest

from zerosearch.errors import UserError
from zerosearch.eval.metrics import paired_difference, summarize


def rec(i, source, em, cover_em=None, f1=None, n_searches=0, answered=True):
    return {
        "id": str(i),
        "data_source": source,
        "em": em,
        "cover_em": em if cover_em is None else cover_em,
        "f1": em if f1 is None else f1,
        "n_searches": n_searches,
        "answered": answered,
    }


def test_average_is_over_datasets_not_questions():
    records = [rec(i, "nq", 1.0, n_searches=2) for i in range(4)] + [
        rec(9, "triviaqa", 0.0, n_searches=1, answered=False)
    ]
    s = summarize(records, n_boot=200)
    assert s["nq"]["em"] == {"mean": 1.0, "lo": 1.0, "hi": 1.0}  # constant column: the CI collapses
    assert s["triviaqa"]["em"]["mean"] == 0.0
    assert s["average"]["em"]["mean"] == 0.5  # (1 + 0) / 2, not 4/5 over questions
    assert s["average"]["em"]["lo"] == s["average"]["em"]["hi"] == 0.5
    assert (s["nq"]["n"], s["triviaqa"]["n"], s["average"]["n"]) == (4, 1, 5)
    assert s["nq"]["searches_per_question"] == 2.0 and s["average"]["searches_per_question"] == 1.5
    assert s["triviaqa"]["answer_rate"] == 0.0 and s["average"]["answer_rate"] == 0.5


def test_ci_brackets_the_mean_and_is_seeded():
    records = [rec(i, "", float(i % 2), f1=0.5) for i in range(40)]  # em mean 0.5
    a, b = summarize(records, n_boot=500, seed=3), summarize(records, n_boot=500, seed=3)
    assert a == b
    em = a["all"]["em"]  # an empty data_source is reported as "all"
    assert em["mean"] == 0.5 and 0.25 < em["lo"] < 0.5 < em["hi"] < 0.75
    assert a["all"]["f1"] == {"mean": 0.5, "lo": 0.5, "hi": 0.5}
    assert summarize(records, n_boot=500, seed=4)["all"]["em"] != em


def test_cover_em_and_f1_are_summarized_separately():
    s = summarize([rec(0, "x", 0.0, cover_em=1.0, f1=0.25), rec(1, "x", 0.0, cover_em=0.0, f1=0.75)], n_boot=50)
    assert s["x"]["cover_em"]["mean"] == 0.5 and s["x"]["f1"]["mean"] == 0.5 and s["x"]["em"]["mean"] == 0.0


def test_summarize_empty_is_a_user_error():
    with pytest.raises(UserError, match="no evaluation records"):
        summarize([])


def test_paired_difference_b_minus_a():
    a = [rec(i, "nq", 0.0) for i in range(5)] + [rec(i, "tq", 1.0) for i in range(5)]
    b = [rec(i, "nq", 1.0) for i in range(5)] + [rec(i, "tq", 1.0) for i in range(5)]
    d = paired_difference(a, b, n_boot=100)
    assert d["nq"]["em"] == {"mean": 1.0, "lo": 1.0, "hi": 1.0, "p_le_0": 0.0}
    assert d["tq"]["em"]["mean"] == 0.0 and d["tq"]["em"]["p_le_0"] == 1.0
    assert d["average"]["em"]["mean"] == 0.5 and d["average"]["n"] == 10


def test_paired_difference_pairs_by_id_not_by_order():
    a = [rec(0, "nq", 1.0), rec(1, "nq", 0.0)]
    b = [rec(1, "nq", 0.0), rec(0, "nq", 1.0)]  # same scores per id, other order
    assert paired_difference(a, b, n_boot=50)["nq"]["em"]["mean"] == 0.0
    assert paired_difference(a, b, n_boot=50)["nq"]["em"]["hi"] == 0.0


def test_paired_difference_needs_the_same_questions():
    with pytest.raises(UserError, match="1 only in A, 0 only in B"):
        paired_difference([rec(0, "nq", 1.0), rec(1, "nq", 1.0)], [rec(0, "nq", 1.0)])
