"""`zerosearch train` end to end with tiny-random: metrics, checkpoints, and resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMING = {"tokens_per_s", "rollout_s", "engine_s", "update_s", "step_s"}
# Small and deterministic: a tiny-random policy and simulator, short turns, a checkpoint every step.
FAST = [
    "--model",
    "tiny-random",
    "--set",
    "engine.simulator_model=tiny-random",
    "--set",
    "rollout.max_turn_tokens=24",
    "--set",
    "rl.prompts_per_step=2",
    "--set",
    "save_every=1",
    "--set",
    "progress=false",
]


def train_cmd(out: Path, *extra: str, steps: int = 3) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from zerosearch.cli import main; main()",
        "train",
        *FAST,
        "--steps",
        str(steps),
        "--out",
        str(out),
        *extra,
    ]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING}


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(tmp_path):
    full = tmp_path / "full"
    subprocess.run(train_cmd(full), check=True, env=env(), capture_output=True)
    rows = metrics(full)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in (
        "reward",
        "f1",
        "em",
        "searches",
        "p_noisy",
        "response_len",
        "kl",
        "entropy",
        "clip_frac",
        "grad_norm",
        "lr",
        "tokens_per_s",
        "rollout_s",
        "engine_s",
        "update_s",
    ):
        assert key in rows[-1], key
    assert (full / "checkpoints" / "step-000003" / "trainer_state.pt").exists()

    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(killed), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = killed / "checkpoints" / "step-000002" / "trainer_state.pt"
    while not marker.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / "step-000003").exists(), "the run finished before the kill: test is void"

    subprocess.run(train_cmd(killed, "--resume"), check=True, env=env(), capture_output=True)
    resumed = metrics(killed)
    assert [r["step"] for r in resumed] == [1, 2, 3]
    assert comparable(resumed[-1]) == comparable(rows[-1])


@pytest.mark.slow
def test_a_second_run_into_the_same_directory_needs_resume(tmp_path):
    out = tmp_path / "run"
    subprocess.run(train_cmd(out, steps=1), check=True, env=env(), capture_output=True)
    again = subprocess.run(train_cmd(out, steps=1), env=env(), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr


@pytest.mark.slow
def test_two_cpu_processes_with_gloo(tmp_path):
    """The same trainer in 2 CPU processes (Accelerator -> DDP over gloo). Launched with torchrun, to which
    `accelerate launch` delegates on GPUs; on CPUs `accelerate launch` itself needs MPI for several processes."""
    out = tmp_path / "ddp"
    launcher = tmp_path / "zerosearch_main.py"
    launcher.write_text("from zerosearch.cli import main\nmain()\n")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        str(launcher),
        "train",
        *FAST,
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["step"] for r in metrics(out)] == [1, 2]  # one line per step (the main process), not one per process
    assert sorted(p.name for p in (out / "trajectories").iterdir()) == [
        "step-000001-rank0.jsonl",
        "step-000001-rank1.jsonl",
        "step-000002-rank0.jsonl",
        "step-000002-rank1.jsonl",
    ]
    assert (out / "checkpoints" / "step-000002" / "trainer_state.pt").exists()
