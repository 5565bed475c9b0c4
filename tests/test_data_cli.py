import os
import subprocess
import sys

import pyarrow.parquet as pq
import typer
from typer.testing import CliRunner

from zerosearch.data import read_questions
from zerosearch.data.cli import register

app = typer.Typer()
register(app)


def _zerosearch(*args, cache):
    """In-process, for speed; the real entry point (`main`) is run in a subprocess where the exit path matters."""
    return CliRunner().invoke(app, ["data", *args], env={"ZEROSEARCH_CACHE": str(cache)})


def _entry_point(*args, cache):
    env = os.environ | {"ZEROSEARCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from zerosearch.cli import main; main()", "data", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_build_inspect_convert(tmp_path):
    out = tmp_path / "D"
    run = _zerosearch("build", "--out", str(out), "--seed", "0", cache=tmp_path / "cache")
    assert run.exit_code == 0, run.output
    assert sorted(p.name for p in out.iterdir()) == [
        "corpus.jsonl",
        "stats.json",
        "test.jsonl",
        "test.parquet",
        "train.jsonl",
        "train.parquet",
    ]
    assert "oracle hop recall@5" in run.stdout

    run = _zerosearch("inspect", str(out / "test.parquet"), "--n", "2", cache=tmp_path / "cache")
    assert run.exit_code == 0, run.output
    assert "200 questions" in run.stdout and "by type: comparison 20, single_hop 100, two_hop 80" in run.stdout
    run = _zerosearch("inspect", str(out / "corpus.jsonl"), cache=tmp_path / "cache")
    assert run.exit_code == 0 and "corpus of" in run.stdout

    run = _zerosearch("convert", str(out / "test.parquet"), str(tmp_path / "t.csv"), cache=tmp_path / "cache")
    assert run.exit_code == 0, run.output
    run = _zerosearch("convert", str(tmp_path / "t.csv"), str(tmp_path / "t.parquet"), cache=tmp_path / "cache")
    assert run.exit_code == 0, run.output
    original, back = read_questions(out / "test.parquet"), read_questions(tmp_path / "t.parquet")
    assert [(e.id, e.question, e.golden_answers) for e in back] == [
        (e.id, e.question, e.golden_answers) for e in original
    ]


def test_build_reads_its_section_and_a_flag_wins_over_set(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    run = _zerosearch(
        "build", "--set", f"world.out={a}", "--set", "world.seed=1", "--out", str(b), cache=tmp_path / "c"
    )
    assert run.exit_code == 0, run.output
    assert f"seed 1 -> {b}" in run.stdout and (b / "corpus.jsonl").exists() and not a.exists()


def test_inspect_bad_parquet_is_one_clear_line(tmp_path):
    from zerosearch.data import QAExample, write_questions

    good = write_questions([QAExample("a", "q?", ["x"])], tmp_path / "good.parquet")
    pq.write_table(pq.read_table(good).drop(["golden_answers"]), tmp_path / "bad.parquet")
    run = _entry_point("inspect", str(tmp_path / "bad.parquet"), cache=tmp_path / "cache")
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing column 'golden_answers'" in lines[0] and "bad.parquet" in lines[0]
    assert "Traceback" not in run.stderr + run.stdout

    run = _zerosearch("build", "--size", "huge", "--out", str(tmp_path / "x"), cache=tmp_path / "cache")
    assert run.exit_code != 0 and "world.size must be one of small, medium, large" in str(run.exception)
