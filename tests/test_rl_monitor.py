"""The collapse guard and the metrics log."""

import json
import math
import os

import pytest

from zerosearch.errors import UserError
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


def test_guard_state_round_trips_and_replaces_what_was_there():
    a = CollapseGuard(window=3)
    for r in (0.6, 0.7):
        a.check(step(r))
    b = CollapseGuard(window=3)
    b.check(step(0.0))  # a history of its own, which loading must replace, not extend
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict()
    # the same verdicts from here on: a collapse that only the loaded history can reveal
    verdicts = [(a.check(step(r)), b.check(step(r))) for r in (0.6, 0.0, 0.0, 0.0)]
    assert all(x == y for x, y in verdicts) and "reward collapse" in verdicts[-1][1]


def test_metrics_log_drops_a_torn_last_line_and_refuses_a_corrupt_middle(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "reward": 0.1}\n{"step": 2, "reward": 0.2}\n{"step": 3, "rew')  # killed mid-write
    MetricsLogger(tmp_path, {}, resume_step=2)
    assert path.read_text() == '{"step": 1, "reward": 0.1}\n{"step": 2, "reward": 0.2}\n'
    path.write_text('{"step": 1}\n{"ste\n{"step": 2}\n')
    with pytest.raises(UserError, match="line 2"):
        MetricsLogger(tmp_path, {}, resume_step=2)


def test_metrics_rewrite_is_atomic(tmp_path, monkeypatch):
    """A failure (a kill, a full disk) while the history is rewritten leaves the old history whole."""
    log = MetricsLogger(tmp_path, {})
    for i in (1, 2, 3):
        log.log({"step": i})
    before = (tmp_path / "metrics.jsonl").read_text()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        log.truncate_after(1)
    assert (tmp_path / "metrics.jsonl").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temp file left behind


def test_metrics_log_truncates_redone_steps_and_plots(tmp_path):
    log = MetricsLogger(tmp_path, {})
    for i in (1, 2, 3):
        log.log({"step": i, "reward": 0.1 * i, "kl": 0.0})
    MetricsLogger(tmp_path, {}, resume_step=2)  # resuming from the step-2 checkpoint
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    paths = plot_run(tmp_path)
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
