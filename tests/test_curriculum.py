import json

import pytest
from typer.testing import CliRunner

from zerosearch.cli import app
from zerosearch.curriculum import constant_probability, linear_probability, noise_probability, schedule


@pytest.mark.parametrize("frac,expected", [(0.25, 0.069), (0.5, 0.167), (0.75, 0.305), (1.0, 0.5)])
def test_eq1_paper_values(frac, expected):
    # p = 0.5 * (4^x - 1) / 3, e.g. x = 0.5: 0.5 * (2 - 1) / 3 = 0.1667
    assert noise_probability(round(frac * 1000), 1000) == pytest.approx(expected, abs=5e-4)


def test_endpoints_and_monotonic():
    probs = schedule("exponential", 203, 0.1, 0.7, 4.0)
    assert probs[0] == pytest.approx(0.1) and probs[-1] == pytest.approx(0.7)
    assert all(a <= b for a, b in zip(probs, probs[1:]))


def test_base_one_is_the_linear_limit_without_dividing_by_zero():
    assert noise_probability(30, 100, 0.0, 0.5, base=1.0) == pytest.approx(0.15)
    assert noise_probability(30, 100, 0.0, 0.5, base=1.0 + 1e-12) == pytest.approx(0.15)
    assert linear_probability(50, 100, 0.2, 0.4) == pytest.approx(0.3)
    assert constant_probability(7, 100, 0.25) == 0.25


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(step=5, total_steps=0), "total_steps"),
        (dict(step=-1, total_steps=10), "step"),
        (dict(step=1, total_steps=10, p_end=1.5), "p_end"),
        (dict(step=1, total_steps=10, base=0), "base"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        noise_probability(**kwargs)


def test_cli_json_matches_the_paper():
    result = CliRunner().invoke(app, ["curriculum", "--steps", "203", "--json"])
    assert result.exit_code == 0, result.output
    probs = json.loads(result.output)
    assert len(probs) == 204
    for step, expected in [(51, 0.069), (102, 0.167), (152, 0.305), (203, 0.5)]:
        assert probs[step] == pytest.approx(expected, abs=0.002)


def test_cli_table_and_bad_schedule():
    runner = CliRunner()
    assert "p(noisy)" in runner.invoke(app, ["curriculum", "--steps", "10"]).output
    bad = runner.invoke(app, ["curriculum", "--schedule", "cosine"])
    assert bad.exit_code != 0
