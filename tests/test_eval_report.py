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
    assert md.count("| Method | nq | triviaqa | Avg. |") == 4  # EM, cover-EM, F1, searches/answer rate
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
    assert [json.loads(line)["id"] for line in (out / "rag.jsonl").read_text().splitlines()] == ["0", "1", "2"]
    assert (out / "table.md").read_text() == table_markdown(summaries, META)
    label, back = load_records(out, "rag")
    assert label == "out/rag" and back == RECORDS["rag"]


def test_load_records_errors_name_the_problem(tmp_path):
    write_results(tmp_path, RECORDS, {m: summarize(r, n_boot=10) for m, r in RECORDS.items()}, META)
    with pytest.raises(UserError, match=r"pass --method.*direct, rag"):
        load_records(tmp_path)
    with pytest.raises(UserError, match="result file not found"):
        load_records(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "em": 1}\n')
    with pytest.raises(UserError, match=r"bad.jsonl: line 1: .*cover_em, f1"):
        load_records(bad)
    bad.write_text("{oops\n")
    with pytest.raises(UserError, match=r"bad.jsonl: line 1: not valid JSON"):
        load_records(bad)
