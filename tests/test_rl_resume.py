"""`zerosearch train` end to end with tiny-random: metrics, checkpoints, and resume after SIGKILL, between saves and
during one, reproducing the uninterrupted run row for row and weight for weight."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zerosearch.config import TrainConfig, load_config

TIMING = {"tokens_per_s", "rollout_s", "generation_s", "engine_s", "logprob_s", "update_s", "step_s"}
# Small and deterministic: a tiny-random policy and simulator, short turns, a checkpoint every step. Its rewards are
# all 0 (tiny-random never writes an answer), so an entropy bonus is what moves the weights: a broken weight or
# optimizer restore then shows in the metrics and in the final weights. The warm-up spans 2 of the 4 steps.
FAST = [
    "--model",
    "tiny-random",
    *("--set", "engine.simulator_model=tiny-random", "--set", "engine.simulator_max_tokens=16", "--set", "engine.k=1"),
    *("--set", "rollout.max_turns=1", "--set", "rollout.max_turn_tokens=16"),
    *("--set", "rl.prompts_per_step=2", "--set", "rl.samples_per_prompt=2", "--set", "rl.micro_batch=2"),
    *("--set", "rl.entropy_coef=0.05", "--set", "rl.warmup_ratio=0.5"),
    *("--set", "rl.train_layers=1", "--set", "rl.kl_coef=0.001"),  # a frozen block and the reference on resume
    *("--set", "save_every=1", "--set", "keep_checkpoints=5", "--set", "progress=false"),
]
STEPS = 4
MAIN = "from zerosearch.cli import main; main()"
# The same command with every fsync of a checkpoint save slowed down: a window in which to kill during a save.
SLOW_SAVES = (
    "import time\nfrom zerosearch.rl import checkpoint\nfsync = checkpoint._fsync\n"
    "checkpoint._fsync = lambda path: (time.sleep(0.3), fsync(path))\n" + MAIN
)


def train_cmd(out: Path, *extra: str, steps: int = STEPS, code: str = MAIN) -> list[str]:
    return [sys.executable, "-c", code, "train", *FAST, "--steps", str(steps), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One fresh cache for the module's runs (the tokenizer of tiny-random and the mini-world are built into it)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "ZEROSEARCH_CACHE": str(tmp_path_factory.mktemp("cache"))}


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def final_weights(run: Path) -> dict:
    return load_file(run / "checkpoints" / f"step-{STEPS:06d}" / "model.safetensors")


def kill_when(proc: subprocess.Popen, ready) -> None:
    while not ready() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(tmp_path, env):
    full = tmp_path / "full"
    subprocess.run(train_cmd(full), check=True, env=env, capture_output=True)
    rows = metrics(full)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in (
        *("reward", "f1", "em", "searches", "p_noisy", "response_len", "kl", "entropy", "clip_frac", "grad_norm"),
        *("frac_reward_zero_std", "search_errors", "lr", *TIMING),
    ):
        assert key in rows[-1], key
    lr = load_config(TrainConfig, "tiny").rl.lr
    assert [r["lr"] for r in rows] == pytest.approx([lr / 3, 2 * lr / 3, lr, lr])
    weights = final_weights(full)
    initial = load_file(full / "checkpoints" / "step-000001" / "model.safetensors")  # after one step at lr / 3
    assert max((weights[k] - initial[k]).abs().max().item() for k in weights) > 1e-6  # the weights kept moving

    # killed between two saves; the kill also tore the last metrics line
    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, (killed / "checkpoints" / "step-000002" / "trainer_state.pt").exists)
    assert not (killed / "checkpoints" / f"step-{STEPS:06d}").exists(), "the run finished before the kill"
    with (killed / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "rew')

    # killed during a save: its temp dir holds a whole model and must not survive the resume
    torn = tmp_path / "torn"
    slow = train_cmd(torn, code=SLOW_SAVES)
    proc = subprocess.Popen(slow, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: any((torn / "checkpoints").glob(".tmp-step-000003-*/trainer_state.pt")))
    assert not (torn / "checkpoints" / "step-000003").exists(), "the kill missed the save"
    assert list((torn / "checkpoints").glob(".tmp-step-000003-*"))

    for run in (killed, torn):
        subprocess.run(train_cmd(run, "--resume"), check=True, env=env, capture_output=True)
        assert comparable(metrics(run)) == comparable(rows)
        assert not list((run / "checkpoints").glob(".tmp-*"))
        resumed = final_weights(run)
        assert all(torch.equal(resumed[k], weights[k]) for k in weights)
        assert (run / "config.yaml").read_text() == (full / "config.yaml").read_text().replace(str(full), str(run))


@pytest.mark.slow
def test_a_second_run_into_the_same_directory_needs_resume_and_the_same_config(tmp_path, env):
    out = tmp_path / "run"
    subprocess.run(train_cmd(out, steps=1), check=True, env=env, capture_output=True)
    again = subprocess.run(train_cmd(out, steps=1), env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    changed = subprocess.run(
        train_cmd(out, "--resume", "--set", "rl.lr=0.1", steps=2), env=env, capture_output=True, text=True
    )
    assert changed.returncode == 2 and "rl.lr" in changed.stderr and "rl.steps" in changed.stderr


@pytest.mark.slow
def test_two_cpu_processes_with_gloo(tmp_path, env):
    """The same trainer in 2 CPU processes (Accelerator -> DDP over gloo). Launched with torchrun, to which
    `accelerate launch` delegates on GPUs; on CPUs `accelerate launch` itself needs MPI for several processes."""
    out = tmp_path / "ddp"
    launcher = tmp_path / "zerosearch_main.py"
    launcher.write_text("from zerosearch.cli import main\nmain()\n")
    cmd = [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531"),
        *(str(launcher), "train", *FAST, "--steps", "2", "--out", str(out)),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["step"] for r in metrics(out)] == [1, 2]  # one line per step (the main process), not one per process
    assert sorted(p.name for p in (out / "trajectories").iterdir()) == [
        "step-000001-rank0.jsonl",
        "step-000001-rank1.jsonl",
        "step-000002-rank0.jsonl",
        "step-000002-rank1.jsonl",
    ]
    assert (out / "checkpoints" / "step-000002" / "trainer_state.pt").exists()
    odd = subprocess.run(
        [*cmd[:-2], "--set", "rl.prompts_per_step=3", "--out", str(tmp_path / "odd")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert odd.returncode != 0 and "number of processes" in odd.stderr
