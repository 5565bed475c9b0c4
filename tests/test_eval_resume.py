"""`zerosearch eval` writes each batch as it finishes, says so when not on a terminal, resumes an interrupted run,
and refuses the simulator (an oracle: it is given the gold answers) unless asked for it."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from zerosearch.cli import app
from zerosearch.data import write_questions
from zerosearch.data.formats import QAExample
from zerosearch.errors import UserError

QUESTIONS = [
    QAExample("n0", "What is the capital of Zorland?", ["Velm"], "nq"),
    QAExample("n1", "Which city does the Brastor flow through?", ["Quenby"], "nq"),
    QAExample("h0", "Where does the Brastor flow?", ["Quenby"], "hotpotqa"),
]
TINY = ["--model", "tiny-random", "--batch-size", "1", "--n-boot", "20"]


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def qa(tmp_path):
    return write_questions(QUESTIONS, tmp_path / "qa.jsonl")


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_are_appended_per_batch_with_a_progress_line(qa, tmp_path):
    out = tmp_path / "out"
    result = run("eval", "-m", "direct", "--data", qa, "--out", out, "--json", *TINY)
    # stderr is not a terminal here: one line per batch of 1
    for n in (1, 2, 3):
        assert f"direct: {n}/3 questions" in result.stderr
    assert [(r["method"], r["id"]) for r in _lines(out / "results.jsonl")] == [
        ("direct", "n0"),
        ("direct", "n1"),
        ("direct", "h0"),
    ]


def test_an_interrupted_evaluation_resumes(qa, tmp_path):
    out = tmp_path / "out"
    run("eval", "-m", "direct", "--data", qa, "--out", out, *TINY)
    first, second = (out / "results.jsonl").read_text().splitlines()[:2]
    # As a kill leaves it: one whole record (marked, to see that it is kept, not recomputed) and a torn line.
    kept = json.loads(first) | {"prediction": "KEPT"}
    (out / "results.jsonl").write_text(json.dumps(kept) + "\n" + second[: len(second) // 2])

    result = run("eval", "-m", "direct", "--data", qa, "--out", out, "--json", *TINY)
    assert "direct: 1/3 questions already in" in result.stderr
    assert "direct: 2/3 questions" in result.stderr and "direct: 3/3 questions" in result.stderr
    records = _lines(out / "results.jsonl")
    assert [r["id"] for r in records] == ["n0", "n1", "h0"] and records[0]["prediction"] == "KEPT"
    assert json.loads(result.stdout)["methods"]["direct"]["average"]["n"] == 3

    # a finished method is not run again; a new method is added beside it
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "0", "contents": "Zorland\\nThe capital of Zorland is Velm."}\n')
    result = run("eval", "-m", "direct,rag", "--engine", "bm25", "--corpus", corpus, "--data", qa, "--out", out, *TINY)
    assert "direct: 3/3 questions already in" in result.stderr
    assert [r["method"] for r in _lines(out / "results.jsonl")] == ["direct"] * 3 + ["rag"] * 3

    # other settings never mix into the same records
    with pytest.raises(UserError, match=r"holds direct results of other settings \(limit: None, now 2\)"):
        run("eval", "-m", "direct", "--data", qa, "--out", out, "--limit", "2", *TINY)


def test_the_simulator_is_an_oracle_refused_unless_allowed(qa, tmp_path):
    env = os.environ | {"ZEROSEARCH_CACHE": str(tmp_path / "cache")}
    refused = subprocess.run(
        [sys.executable, "-c", "from zerosearch.cli import main; main()", "eval", "--config", "paper"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [
        "error: engine 'simulator' is given every question's gold answers, so it is an oracle, not a search engine: "
        "pass --engine bm25|dense|web|remote, or --allow-oracle for results labelled ORACLE"
    ]
    with pytest.raises(UserError, match="oracle"):
        run("eval", "-m", "rag", "--engine", "mixed", "--set", "engine.p_real=0.5", "--data", qa)

    out = tmp_path / "oracle"
    simulator = ["--set", "engine.simulator_model=tiny-random", "--set", "engine.simulator_max_tokens=8"]
    result = run(
        "eval", "-m", "rag", "--engine", "simulator", *simulator, "--allow-oracle", "--data", qa, "--out", out,
        "--json", *TINY,
    )  # fmt: skip
    assert json.loads(result.stdout)["oracle"] is True
    assert "**ORACLE**" in (out / "table.md").read_text()
    # a real engine is no oracle
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "0", "contents": "Zorland\\nThe capital of Zorland is Velm."}\n')
    result = run("eval", "-m", "rag", "--engine", "bm25", "--corpus", corpus, "--data", qa, "--out", tmp_path / "b",
                 "--json", *TINY)  # fmt: skip
    assert json.loads(result.stdout)["oracle"] is False and "ORACLE" not in (tmp_path / "b" / "table.md").read_text()
