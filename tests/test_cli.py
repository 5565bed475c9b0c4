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


def _commands(command, path=()):
    """Every command a user can run: the leaves of the command tree, and a group that runs itself (`eval`)."""
    subcommands = getattr(command, "commands", {})
    if not subcommands or command.invoke_without_command:
        yield " ".join(path), command
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


def test_every_command_takes_config_and_set():
    import typer

    commands = dict(_commands(typer.main.get_command(app)))
    assert {"eval", "eval compare", "data build", "demo", "plot", "cost", "view", "curriculum"} <= set(commands)
    missing = [
        name
        for name, command in commands.items()
        if not {"--config", "--set"} <= {opt for p in command.params for opt in p.opts}
    ]
    assert not missing, f"commands without --config/--set: {missing}"


def _cost(*args):
    import json

    result = CliRunner().invoke(app, ["cost", "--searches", "1000", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["inputs"]["api_price_per_1k"]


def test_a_stage_section_layers_defaults_yaml_set_then_flags(tmp_path):
    from zerosearch.eval.cost import CostInputs

    recipe = tmp_path / "r.yaml"
    recipe.write_text("cost:\n  api_price: 1.5\n")
    assert _cost() == CostInputs(searches=0).api_price_per_1k  # no flags: the command's old default
    assert _cost("--config", str(recipe)) == 1.5
    assert _cost("--config", str(recipe), "--set", "cost.api_price=2.5") == 2.5
    assert _cost("--config", str(recipe), "--set", "cost.api_price=2.5", "--api-price", "3.5") == 3.5


def test_a_bad_stage_setting_names_the_field():
    from zerosearch.errors import ConfigError

    result = CliRunner().invoke(app, ["cost", "--paper", "--set", "cost.searches=10"])
    assert isinstance(result.exception, ConfigError) and "cost.paper" in str(result.exception)
    result = CliRunner().invoke(app, ["plot", "nowhere", "--set", "demo.steps=0"])
    assert isinstance(result.exception, ConfigError) and "demo.steps must be > 0" in str(result.exception)


def test_a_bad_flag_value_is_a_usage_error_without_traceback():
    # Recent typer raises its own (vendored) click exceptions: main() must still turn them into a usage line.
    proc = subprocess.run(
        [sys.executable, "-m", "zerosearch", "cost", "--gpus", "many"], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert "Invalid value for '--gpus'" in proc.stderr and "Traceback" not in proc.stderr
