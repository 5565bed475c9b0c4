"""The cost report: the paper's Table 8 arithmetic, hand-computed costs, and counts read from a run."""

import json
from dataclasses import asdict

import pytest
from typer.testing import CliRunner

from zerosearch.cli import app
from zerosearch.errors import UserError
from zerosearch.eval.cost import PAPER, CostInputs, cost_report, run_counts


def test_paper_inputs_reproduce_table_8():
    # By hand, from the paper's figures (not from the module's constants): Table 8's Google/SerpAPI run is
    # 64,000 searches for $586.70, i.e. $9.1671875 per 1k (586.70 / 64); the SFT-14B simulator is 4 A100s for
    # $70.80, i.e. 12 h x $1.475 per GPU-hour x 4.
    assert asdict(PAPER) == pytest.approx(
        {
            "searches": 64_000,
            "api_price_per_1k": 9.1671875,
            "gpu_hours": 12.0,
            "gpu_count": 4,
            "gpu_price_per_hour": 1.475,
        }
    )
    report = cost_report(PAPER)
    assert report["api_cost"] == 586.70  # 64 x 9.1671875
    assert report["gpu_cost"] == 70.80  # 12 x 4 x 1.475 = 48 x 1.475
    assert report["saving"] == 515.90  # 586.70 - 70.80
    assert report["saving_pct"] == 87.9  # 515.90 / 586.70 = 0.87933..., the "88%" of the press coverage


def test_costs_are_hand_computable():
    r = cost_report(CostInputs(searches=2500, api_price_per_1k=4.0, gpu_hours=3.0, gpu_count=2, gpu_price_per_hour=1.5))
    assert (r["api_cost"], r["gpu_cost"], r["saving"], r["saving_pct"]) == (10.0, 9.0, 1.0, 10.0)
    assert cost_report(CostInputs(searches=0))["saving_pct"] is None
    with pytest.raises(UserError, match="gpu_count must be >= 0"):
        CostInputs(searches=1, gpu_count=-1)


def write_run(run, rows, prompts_per_step=2, samples_per_prompt=5):
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_text(
        f"rl:\n  prompts_per_step: {prompts_per_step}\n  samples_per_prompt: {samples_per_prompt}\n"
    )
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_run_counts_sum_the_trainer_steps(tmp_path):
    # The trainer logs per step: searches per trajectory (mean), engine seconds, step seconds.
    write_run(
        tmp_path,
        [
            {"step": 1, "searches": 1.5, "engine_s": 2.0, "step_s": 3000.0},
            {"step": 2, "searches": 1.0, "engine_s": 3.0, "step_s": 4200.0},
        ],
    )
    assert run_counts(tmp_path) == {
        "steps": 2,
        "searches": 25,
        "engine_seconds": 5.0,
        "wall_seconds": 7200.0,
    }  # (1.5 + 1) × 10
    out = CliRunner().invoke(
        app, ["cost", str(tmp_path), "--gpus", "2", "--gpu-price", "1", "--api-price", "4", "--json"]
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["api_cost"] == 0.1 and report["gpu_cost"] == 4.0  # 25/1000 × $4; 2 h × 2 GPUs × $1
    assert report["counts"]["steps"] == 2


def test_run_counts_errors(tmp_path):
    with pytest.raises(UserError, match="no metrics.jsonl"):
        run_counts(tmp_path)
    write_run(tmp_path, [{"step": 1, "loss": 0.5}])
    with pytest.raises(UserError, match="metrics.jsonl:1: no 'searches' field"):
        run_counts(tmp_path)
    (tmp_path / "config.yaml").write_text("rl: {}\n")
    with pytest.raises(UserError, match="needs rl.prompts_per_step"):
        run_counts(tmp_path)


def test_cli_paper_json():
    out = CliRunner().invoke(app, ["cost", "--paper", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert (report["api_cost"], report["gpu_cost"], report["saving_pct"]) == (586.70, 70.80, 87.9)  # Table 8
    assert report["inputs"]["api_price_per_1k"] == pytest.approx(9.1671875)  # 586.70 / 64, by hand
    assert set(report["sources"]) == set(report["inputs"])  # every input says where it comes from
