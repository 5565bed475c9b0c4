"""`zerosearch data prepare`: FlashRAG-layout folders to the ZeroSearch / Search-R1 parquet, on real questions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from zerosearch import prompts
from zerosearch.data import DataError, read_questions
from zerosearch.data.cli import register
from zerosearch.data.prepare import prepare

# CI has shared/ beside the clone; the package itself never reads it.
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
REAL = FIXTURES / "real-qa-sample.jsonl"
pytestmark = pytest.mark.skipif(not REAL.exists(), reason=f"real QA fixtures not present ({FIXTURES})")

app = typer.Typer()
register(app)


@pytest.fixture
def flashrag(tmp_path) -> Path:
    """A FlashRAG download in miniature: `NAME/SPLIT.jsonl` rows of id, question, golden_answers only.

    The fixture holds 40 NQ and 40 TriviaQA questions; the TriviaQA ones stand in for the other datasets (only the
    layout matters here). HotpotQA has train and dev (no test), TriviaQA dev and test, Bamboogle test only.
    """
    rows = [json.loads(line) for line in REAL.read_text().splitlines()]
    nq = [r for r in rows if r["data_source"] == "nq"]
    other = [r for r in rows if r["data_source"] == "triviaqa"]
    layout = {
        "nq": {"train": nq[:30], "dev": nq[30:35], "test": nq[35:]},
        "hotpotqa": {"train": other[:20], "dev": other[20:28]},
        "triviaqa": {"dev": other[28:30], "test": other[30:34]},
        "bamboogle": {"test": other[34:]},
    }
    root = tmp_path / "flashrag"
    for name, splits in layout.items():
        (root / name).mkdir(parents=True)
        for split, part in splits.items():
            lines = [json.dumps({k: r[k] for k in ("id", "question", "golden_answers")}) + "\n" for r in part]
            (root / name / f"{split}.jsonl").write_text("".join(lines))
    return root


def _cli(*args):
    return CliRunner().invoke(app, ["data", *map(str, args)])


def test_prepare_writes_the_paper_train_and_test_parquet(flashrag, tmp_path):
    out = tmp_path / "out"
    run = _cli("prepare", "hotpotqa", "nq", "--source", flashrag, "--out", out)
    assert run.exit_code == 0, run.output
    assert "train.parquet: 50 questions (nq 30, hotpotqa 20)" in run.stdout
    assert "test.parquet: 13 questions (nq 5 (test), hotpotqa 8 (dev))" in run.stdout

    # Exactly the schema of the real ZeroSearch/Search-R1 parquet.
    assert pq.read_schema(out / "train.parquet").equals(pq.read_schema(FIXTURES / "real-qa-sample.parquet"))
    train = pq.read_table(out / "train.parquet").to_pylist()
    assert [r["data_source"] for r in train] == ["nq"] * 30 + ["hotpotqa"] * 20  # the paper's order
    first = train[0]
    question = first["question"]
    assert question.endswith("?") and first["prompt"][0]["content"] == prompts.policy_prompt(question)
    assert first["reward_model"]["ground_truth"]["target"] == first["golden_answers"]
    assert train[30]["extra_info"] == {"split": "train", "index": 0}  # counted within each dataset, as Search-R1

    test = read_questions(out / "test.parquet")
    assert [(e.data_source, e.meta["split"]) for e in (test[0], test[-1])] == [("nq", "test"), ("hotpotqa", "dev")]

    run = _cli("inspect", out / "train.parquet")
    assert run.exit_code == 0 and "by data_source: hotpotqa 20, nq 30" in run.stdout


def test_paper_order_test_before_dev_and_missing_splits(flashrag, tmp_path):
    with pytest.raises(DataError, match=r"popqa: no split found in .*popqa/"):
        prepare(["nq", "popqa"], flashrag, tmp_path / "x")
    counts = prepare(["bamboogle", "triviaqa", "nq"], flashrag, tmp_path / "y", train=["nq", "triviaqa"])
    assert list(counts["test"]) == ["nq", "triviaqa", "bamboogle"]
    assert counts["test"]["triviaqa"] == {"split": "test", "questions": 4}  # test wins over dev
    assert counts["train"] == {"nq": 30}  # triviaqa has no train split here: skipped, said so
    prepare(["bamboogle"], flashrag, tmp_path / "z")
    assert not (tmp_path / "z" / "train.parquet").exists() and (tmp_path / "z" / "test.parquet").exists()


def test_prepare_errors_are_one_line(flashrag, tmp_path):
    with pytest.raises(DataError, match=r"unknown dataset 'squad': choose from nq, triviaqa, popqa"):
        prepare(["squad"], flashrag, tmp_path)
    with pytest.raises(DataError, match=r"unknown training dataset"):
        prepare(["nq"], flashrag, tmp_path, train=["nq", "2wiki"])
    with pytest.raises(DataError, match=r"--source .*nowhere: no such folder"):
        prepare(["nq"], tmp_path / "nowhere", tmp_path)
    # The hub without a network: the real entry point prints one line, no traceback.
    env = os.environ | {"HF_HUB_OFFLINE": "1", "ZEROSEARCH_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-c", "from zerosearch.cli import main; main()", "data", "prepare", "nq", "--out", tmp_path],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        "error: cannot read RUC-NLPIR/FlashRAG_datasets from the hub (OfflineModeIsEnabled); download FlashRAG's "
        "datasets and pass --source DIR"
    ]
