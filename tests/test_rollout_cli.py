"""`zerosearch rollout` and `zerosearch view` end to end through the real CLI."""

import json
import re

from typer.testing import CliRunner

from zerosearch import prompts
from zerosearch.cli import app
from zerosearch.rollout.trajectory import Search, Segment, Trajectory, read_jsonl, write_jsonl
from zerosearch.rollout.view import render_html

runner = CliRunner()


def sample_trajectories():
    evil = "<script>alert('x')</script> & co"
    return [
        Trajectory(
            question=f"Who wrote {evil}?",
            golden_answers=["Ann <b>"],
            id="q1",
            response_ids=[1, 2, 3, 4, 5],
            loss_mask=[1, 1, 0, 0, 1],
            segments=[
                Segment("policy", "<search> who </search>", 2),
                Segment("env", prompts.observation(["d <i>"]), 2),
                Segment("policy", "<answer> Ann </answer>", 1),
            ],
            searches=[Search("who", "noisy", [{"text": "d <i>", "title": "T"}])],
            answer="Ann",
            reward=0.667,
            em=0.0,
            n_turns=2,
            stop_reason="answer",
        ),
        Trajectory(
            question="Second?",
            golden_answers=["b"],
            id="q2",
            response_ids=[7],
            loss_mask=[1],
            segments=[Segment("policy", "rambling", 1)],
            n_turns=1,
            stop_reason="max_turns",
        ),
    ]


def test_view_writes_an_escaped_self_contained_page(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(sample_trajectories(), path)
    result = runner.invoke(app, ["view", str(path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "t.html").read_text()
    assert page.count('class="traj"') == 2 and "q1" in page and "q2" in page
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert 'class="policy"' in page and 'class="env"' in page and "badge noisy" in page
    assert "Ann &lt;b&gt;" in page and "0.667" in page and "(none)" in page  # gold, reward, missing answer
    assert not re.search(r"(src|href)=\"http", page)  # nothing to fetch


def test_view_refuses_a_file_that_is_not_trajectories(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"nope": 1}) + "\n")
    result = runner.invoke(app, ["view", str(bad)])
    assert result.exit_code != 0 and "not a trajectories jsonl" in str(result.exception)


def test_render_html_counts_stop_reasons():
    page = render_html(sample_trajectories())
    assert "answer 1" in page and "max_turns 1" in page


def test_rollout_command_with_tiny_random_and_bm25(tmp_path):
    out = tmp_path / "T.jsonl"
    result = runner.invoke(
        app,
        [
            "rollout",
            "--model",
            "tiny-random",
            "--engine",
            "bm25",
            "--data",
            "mini-world:test",
            "--n",
            "3",
            "--samples",
            "2",
            "--out",
            str(out),
            "--set",
            "rollout.max_turn_tokens=8",
            "--set",
            "rollout.max_turns=2",
        ],
    )
    assert result.exit_code == 0, result.output
    trajs = read_jsonl(out)
    assert len(trajs) == 6 and trajs[0].id == trajs[1].id
    for t in trajs:
        assert len(t.loss_mask) == len(t.response_ids) == sum(s.n_tokens for s in t.segments)
        assert sum(t.loss_mask) == sum(s.n_tokens for s in t.segments if s.role == "policy")
