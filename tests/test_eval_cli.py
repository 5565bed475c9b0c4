"""`zerosearch eval`, `eval compare` and `chat` end to end, with tiny-random and a real BM25 index."""

import json

import pytest
from typer.testing import CliRunner

from zerosearch.cli import app
from zerosearch.data import write_questions
from zerosearch.data.formats import QAExample
from zerosearch.errors import UserError

CORPUS = [
    {"id": "0", "contents": "Zorland\nThe capital of Zorland is Velm."},
    {"id": "1", "contents": "Brastor\nThe Brastor flows through Quenby."},
]
QUESTIONS = [
    QAExample("n0", "What is the capital of Zorland?", ["Velm"], "nq"),
    QAExample("n1", "Which city does the Brastor flow through?", ["Quenby"], "nq"),
    QAExample("t0", "Where does the Brastor flow?", ["Quenby"], "triviaqa"),
]
TINY = ["--model", "tiny-random", "--set", "rollout.max_turn_tokens=8", "--batch-size", "2", "--n-boot", "50"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    (d / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CORPUS))
    write_questions(QUESTIONS, d / "qa.parquet")  # the ZeroSearch / Search-R1 schema, two data sources
    return d


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.stdout  # progress goes to stderr


def test_eval_reports_each_data_source_and_the_average(files):
    out = files / "direct"
    results = json.loads(
        run("eval", "--method", "direct,cot", "--data", files / "qa.parquet", "--out", out, "--json", *TINY)
    )
    for method in ("direct", "cot"):
        summary = results["methods"][method]
        assert set(summary) == {"nq", "triviaqa", "average"}
        assert (summary["nq"]["n"], summary["triviaqa"]["n"], summary["average"]["n"]) == (2, 1, 3)
        for metric in ("em", "cover_em", "f1"):
            assert set(summary["average"][metric]) == {"mean", "lo", "hi"}
    assert results["engine"] is None and results["model"] == "tiny-random"  # no method searched
    assert {p.name for p in out.iterdir()} >= {"results.json", "table.md", "em.png", "results.jsonl"}
    assert "| Method | NQ | TriviaQA | Avg. |" in (out / "table.md").read_text()
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["method"], r["id"]) for r in lines] == [(m, i) for m in ("direct", "cot") for i in ("n0", "n1", "t0")]


def test_eval_rag_and_agent_report_the_engine(files):
    out = files / "search"
    results = json.loads(
        run(
            "eval",
            "-m",
            "rag",
            "-m",
            "agent",
            "--engine",
            "bm25",
            "--corpus",
            files / "corpus.jsonl",
            "--data",
            files / "qa.parquet",
            "--data-source",
            "nq",
            "--max-turns",
            "1",
            "--out",
            out,
            "--json",
            *TINY,
        )
    )
    assert results["engine"] == f"bm25 ({files / 'corpus.jsonl'})"
    assert set(results["methods"]["rag"]) == {"nq", "average"}
    assert results["methods"]["rag"]["average"]["searches_per_question"] == 1.0
    assert results["engine_meter"]["queries"] >= 2  # rag's two searches, plus whatever the agent sent
    assert "bm25" in (out / "table.md").read_text()


def test_compare_gives_paired_differences(files):
    direct = files / "direct"
    records = direct / "results.jsonl"
    same = json.loads(run("eval", "compare", records, records, "--method", "direct", "--json", "--n-boot", "20"))
    assert same["by_source"]["average"]["em"]["mean"] == 0.0 and same["difference"] == "B - A"
    diff = json.loads(run("eval", "compare", direct, direct, "--method", "cot", "--json"))
    assert set(diff["by_source"]) == {"nq", "triviaqa", "average"}
    with pytest.raises(UserError, match="holds several methods, pass --method"):
        run("eval", "compare", records, records)
    via_set = json.loads(run("eval", "compare", records, records, "--set", "compare.method=direct", "--json"))
    assert via_set["a"] == same["a"]  # --set compare.method is what --method is a shorthand for
    for method, source, name in (("direct", direct, "a.jsonl"), ("rag", files / "search", "b.jsonl")):
        lines = (source / "results.jsonl").read_text().splitlines()
        (files / name).write_text("".join(line + "\n" for line in lines if json.loads(line)["method"] == method))
    with pytest.raises(UserError, match="same questions"):  # rag ran on the nq questions only
        run("eval", "compare", files / "a.jsonl", files / "b.jsonl")


def test_eval_rejects_bad_input(files):
    with pytest.raises(UserError, match="unknown method 'react'"):
        run("eval", "--method", "react", "--data", files / "qa.parquet")
    with pytest.raises(UserError, match="no data_source 'hotpotqa'"):
        run("eval", "--method", "direct", "--data", files / "qa.parquet", "--data-source", "hotpotqa", *TINY)


def test_chat_once_streams_the_turns_and_the_answer(files):
    output = run(
        "chat",
        "--model",
        "tiny-random",
        "--engine",
        "bm25",
        "--corpus",
        files / "corpus.jsonl",
        "--question",
        "What is the capital of Zorland?",
        "--max-turns",
        "1",
        "--set",
        "rollout.max_turn_tokens=8",
    )
    assert "Answer:" in output and "stop:" in output
