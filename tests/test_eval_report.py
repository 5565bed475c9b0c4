"""The results directory: table layout, cells, plots, and reading results back."""

import json

import pytest

from zerosearch.errors import UserError
from zerosearch.eval.metrics import summarize
from zerosearch.eval.report import cell, load_records, table_markdown, write_results


def rec(i, source, em):
    return {
        "id": str(i),
        "question": "q",
        "golden_answers": ["a"],
        "data_source": source,
        "prediction": "a",
        "em": em,
        "cover_em": em,
        "f1": em,
        "n_searches": 1,
        "answered": True,
        "trajectory": None,
    }


RECORDS = {
    "direct": [rec(0, "nq", 0.0), rec(1, "nq", 0.0), rec(2, "triviaqa", 1.0)],
    "rag": [rec(0, "nq", 1.0), rec(1, "nq", 1.0), rec(2, "triviaqa", 1.0)],
}
META = {"model": "m", "engine": "bm25 (corpus.jsonl)", "data": "x.parquet"}


def test_cell_is_a_percentage_with_its_interval():
    assert cell({"mean": 0.5, "lo": 0.25, "hi": 0.755}) == "50.0 (25.0–75.5)"
    assert cell(None) == "–"


def test_table_has_methods_as_rows_and_datasets_plus_average_as_columns():
    summaries = {m: summarize(r, n_boot=50) for m, r in RECORDS.items()}
    md = table_markdown(summaries, META)
    assert "engine `bm25 (corpus.jsonl)`" in md
    assert md.count("| Method | NQ | TriviaQA | Avg. |") == 4  # EM, cover-EM, F1, searches/answer rate
    em_rows = md.split("## EM")[1].split("##")[0]
    assert "| direct | 0.0 (0.0–0.0) | 100.0 (100.0–100.0) | 50.0 (50.0–50.0) |" in em_rows
    assert "| rag | 100.0 (100.0–100.0) | 100.0 (100.0–100.0) | 100.0 (100.0–100.0) |" in em_rows
    assert "| rag | 1.00 · 100% |" in md


def test_write_results_writes_every_file(tmp_path):
    summaries = {m: summarize(r, n_boot=50) for m, r in RECORDS.items()}
    results = write_results(tmp_path / "out", RECORDS, summaries, META)
    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert results["engine"] == "bm25 (corpus.jsonl)" and set(results["methods"]) == {"direct", "rag"}
    assert results["methods"]["rag"]["average"]["em"]["mean"] == 1.0
    for name in ("em.png", "cover_em.png", "f1.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["method"], r["id"]) for r in lines] == [(m, i) for m in ("direct", "rag") for i in ("0", "1", "2")]
    assert (out / "table.md").read_text() == table_markdown(summaries, META)
    label, back = load_records(out, "rag")
    assert label == "out/rag" and back == [r | {"method": "rag"} for r in RECORDS["rag"]]
    # rewriting some methods keeps the others' records
    write_results(out, {"rag": RECORDS["direct"]}, {"rag": summaries["direct"]}, META)
    assert [r["em"] for r in load_records(out, "rag")[1]] == [0.0, 0.0, 1.0]
    assert [r["em"] for r in load_records(out, "direct")[1]] == [0.0, 0.0, 1.0]


def test_load_records_errors_name_the_problem(tmp_path):
    write_results(tmp_path, RECORDS, {m: summarize(r, n_boot=10) for m, r in RECORDS.items()}, META)
    with pytest.raises(UserError, match=r"pass --method \(one of direct, rag\)"):
        load_records(tmp_path)
    with pytest.raises(UserError, match=r"no records of method 'cot' \(found: direct, rag\)"):
        load_records(tmp_path, "cot")
    with pytest.raises(UserError, match="result file not found"):
        load_records(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "em": 1}\n')
    with pytest.raises(UserError, match=r"bad.jsonl: line 1: .*cover_em, f1"):
        load_records(bad)
    bad.write_text("{oops\n")
    with pytest.raises(UserError, match=r"bad.jsonl: line 1: not valid JSON"):
        load_records(bad)


def test_datasets_in_the_paper_order_with_hop_averages():
    # given out of order; two single-hop and two multi-hop datasets
    records = [rec(0, "bamboogle", 0.0), rec(1, "nq", 1.0), rec(2, "hotpotqa", 0.5), rec(3, "popqa", 0.0)]
    records += [rec(4, "bamboogle", 1.0), rec(5, "nq", 1.0), rec(6, "mine", 1.0)]
    summary = summarize(records, n_boot=20)
    assert list(summary) == [
        "nq", "popqa", "hotpotqa", "bamboogle", "mine", "single_hop_average", "multi_hop_average", "average"
    ]  # fmt: skip
    # by hand: single-hop (1 + 0) / 2; multi-hop (0.5 + 0.5) / 2; all five datasets (1 + 0 + 0.5 + 0.5 + 1) / 5
    em = {k: summary[k]["em"]["mean"] for k in ("single_hop_average", "multi_hop_average", "average")}
    assert em == {"single_hop_average": 0.5, "multi_hop_average": 0.5, "average": 0.6}
    assert (summary["single_hop_average"]["n"], summary["multi_hop_average"]["n"]) == (3, 3)
    md = table_markdown({"rag": summary}, META)
    assert "| Method | NQ | PopQA | HotpotQA | Bamboogle | mine | Single-hop avg. | Multi-hop avg. | Avg. |" in md
    assert "| rag | 100.0 (100.0–100.0) | 0.0 (0.0–0.0) | 50.0 (50.0–50.0) |" in md
