import subprocess
import sys

import pytest
from typer.testing import CliRunner

from zerosearch.cli import app

STAGES = [
    "curriculum",
    "generate",
    "data",
    "search",
    "serve",
    "rollout",
    "view",
    "train",
    "warmstart",
    "plot",
    "demo",
    "sft",
    "eval",
    "cost",
    "chat",
]


def test_help_lists_every_stage():
    out = CliRunner().invoke(app, ["--help"], terminal_width=200).output
    for stage in STAGES:
        assert f" {stage} " in out, stage


def test_generate_runs_on_a_tiny_model():
    result = CliRunner().invoke(app, ["generate", "--model", "tiny-random", "--max-new-tokens", "4", "hello"])
    assert result.exit_code == 0, result.output


def test_user_errors_print_one_line_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "zerosearch", "generate", "--model", "no-such-model", "hi"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "unknown model 'no-such-model'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_bundled_model_knows_the_capital_of_france():
    result = CliRunner().invoke(app, ["generate", "--model", "smollm2-135m", "What is the capital of France?"])
    assert result.exit_code == 0 and "Paris" in result.output, result.output
