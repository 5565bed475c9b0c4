"""The collapse guard and the metrics log."""

import json
import math

from zerosearch.rl.monitor import CollapseGuard, MetricsLogger
from zerosearch.rl.plot import plot_run


def step(reward, entropy=1.0, loss=0.1):
    return {"reward": reward, "entropy": entropy, "loss": loss, "grad_norm": 1.0}


def test_non_finite_loss_is_flagged_at_once():
    assert "non-finite" in CollapseGuard().check(step(0.5, loss=math.nan))


def test_reward_collapse_after_a_good_window():
    guard = CollapseGuard(window=3, ratio=0.2)
    for r in (0.5, 0.6, 0.7, 0.6):
        assert guard.check(step(r)) is None
    assert guard.check(step(0.0)) is None  # window mean 0.43: not yet
    assert guard.check(step(0.0)) is None
    assert "reward collapse" in guard.check(step(0.0))


def test_low_reward_from_the_start_is_not_a_collapse():
    guard = CollapseGuard(window=3)
    assert all(guard.check(step(0.0)) is None for _ in range(10))


def test_entropy_collapse():
    guard = CollapseGuard(window=2, min_entropy=0.01)
    assert guard.check(step(0.5, entropy=0.001)) is None
    assert "entropy collapse" in guard.check(step(0.5, entropy=0.002))


def test_guard_state_round_trips():
    a = CollapseGuard(window=3)
    for r in (0.5, 0.6, 0.7):
        a.check(step(r))
    b = CollapseGuard(window=3)
    b.load_state_dict(a.state_dict())
    assert b.check(step(0.0)) == a.check(step(0.0))


def test_metrics_log_truncates_redone_steps_and_plots(tmp_path):
    log = MetricsLogger(tmp_path, {})
    for i in (1, 2, 3):
        log.log({"step": i, "reward": 0.1 * i, "kl": 0.0})
    MetricsLogger(tmp_path, {}, resume_step=2)  # resuming from the step-2 checkpoint
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    paths = plot_run(tmp_path)
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
