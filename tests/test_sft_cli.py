import json

import pytest
from typer.testing import CliRunner

from zerosearch.cli import app

CORPUS = [
    ("harrow", "Harrow Lake Observatory\nThe observatory was founded in 1911 by Ilse Varnum."),
    ("varnum", "Ilse Varnum\nIlse Varnum was an astronomer born in Kestrel Bay."),
    ("kestrel", "Kestrel Bay\nKestrel Bay is a fishing town on the Amber Coast."),
    ("amber", "Amber Coast\nThe Amber Coast is known for its cliffs and lighthouses."),
]
QUESTIONS = [
    ("q1", "Who founded Harrow Lake Observatory?", "Ilse Varnum"),
    ("q2", "Where was Ilse Varnum born?", "Kestrel Bay"),
    ("q3", "What is the Amber Coast known for?", "cliffs"),
    ("q4", "In which year was Harrow Lake Observatory founded?", "1911"),
    ("q5", "Which fishing town is on the Amber Coast?", "Kestrel Bay"),
    ("q6", "Which lake has a observatory?", "Harrow Lake"),
]


def _ok(args):
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_the_five_stages_run_end_to_end_from_the_cli(tmp_path):
    corpus, questions = tmp_path / "corpus.jsonl", tmp_path / "questions.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "contents": c}) + "\n" for i, c in CORPUS))
    questions.write_text(
        "".join(json.dumps({"id": i, "question": q, "golden_answers": [a]}) + "\n" for i, q, a in QUESTIONS)
    )
    run = tmp_path / "run"
    _ok(
        [
            "sft",
            "collect",
            "--queries",
            "oracle",
            "--data",
            str(questions),
            "--corpus",
            str(corpus),
            "--k",
            "2",
            "--out",
            str(run / "interactions.jsonl"),
        ]
    )
    assert json.loads((run / "interactions.stats.json").read_text())["questions"] == 6
    _ok(["sft", "judge", "-i", str(run / "interactions.jsonl"), "--out", str(run / "judged.jsonl")])
    assert json.loads((run / "judged.stats.json").read_text())["interactions"] == 6
    _ok(
        [
            "sft",
            "build",
            "-i",
            str(run / "judged.jsonl"),
            "--out",
            str(run / "data"),
            "--balance",
            "0",
            "--val-fraction",
            "0.34",
        ]
    )
    stats = json.loads((run / "data" / "stats.json").read_text())
    assert stats["train"]["examples"] + stats["validation"]["examples"] == 6 and stats["validation"]["examples"] == 2
    _ok(
        [
            "sft",
            "train",
            "--model",
            "tiny-random",
            "--data",
            str(run / "data"),
            "--out",
            str(run / "model"),
            "--steps",
            "1",
            "--set",
            "sft.eval_every=0",
        ]
    )
    out = _ok(
        [
            "sft",
            "grade",
            "--simulator",
            "tiny-random:fewshot",
            "--simulator",
            f"{run / 'model'}:sft",
            "--data",
            str(run / "data"),
            "--out",
            str(run / "grade"),
            "--max-new-tokens",
            "8",
        ]
    )
    assert "| tiny-random:fewshot | fewshot |" in out and f"| {run / 'model'}:sft | sft |" in out
    assert set(json.loads((run / "grade" / "report.json").read_text())) == {
        "tiny-random:fewshot",
        f"{run / 'model'}:sft",
    }


def test_sft_paper_recipe_has_the_paper_settings_and_sft_train_reads_it(tmp_path):
    from zerosearch.config import TrainConfig, load_config
    from zerosearch.errors import UserError

    cfg = load_config(TrainConfig, "sft-paper").sft
    assert (cfg.lr, cfg.steps, cfg.batch_size, cfg.grad_accum, cfg.lora_r) == (1e-6, 1000, 2, 1, 0)  # the paper's
    assert cfg.model == "Qwen/Qwen2.5-14B-Instruct" and cfg.dtype == "bf16"
    # The command takes the recipe by name; here it stops at the (absent) data, before loading any model.
    result = CliRunner().invoke(app, ["sft", "train", "--config", "sft-paper", "--set", f"sft.data={tmp_path}"])
    assert isinstance(result.exception, UserError), result.output
    assert f"no training examples: {tmp_path / 'train.jsonl'} is missing" in str(result.exception)
