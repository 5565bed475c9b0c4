"""Atomic, resumable checkpoints: `RUN/checkpoints/step-000042/` holds the policy (the full model, or only the
LoRA adapter) in Hugging Face format (safetensors), plus `trainer_state.pt`: optimizer, scheduler, value head, RNG
states (python, numpy, torch, the engine's), step, data position and the collapse guard. `trainer_state.pt` holds
only tensors and plain containers and is read with `torch.load(weights_only=True)`: loading a checkpoint never runs
pickled code. A checkpoint is written to a temp dir, synced to disk and renamed into place, so a kill at any moment
leaves either the previous checkpoint or the new one, never half of one (a temp dir left by a kill is removed when
the next run starts). See docs/training.md.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from zerosearch.errors import ConfigError, UserError
from zerosearch.models import quiet_progress

# Fields a resume may change: they do not touch what is computed (where it is written, what is shown).
RESUME_MAY_CHANGE = {
    "out",
    "progress",
    "log_tensorboard",
    "log_wandb",
    "keep_checkpoints",
    "save_every",
    "save_trajectories",
    "rl.micro_batch",  # how a batch is split for memory: the same gradient
}
# Sections a training run reads; the others configure other commands (eval, demo, serve, ...) and may change.
TRAINING_SECTIONS = ("model", "engine", "rollout", "curriculum", "rl")


def _computes(key: str) -> bool:
    """Whether a flattened config key changes what a resumed training run computes."""
    section = key.split(".", 1)[0]
    return key not in RESUME_MAY_CHANGE and ("." not in key or section in TRAINING_SECTIONS)


def rng_state() -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (a temp dir left by a kill is not one)."""
    root = Path(run_dir) / "checkpoints"
    return sorted(p for p in root.glob("step-*") if (p / "trainer_state.pt").exists()) if root.exists() else []


def clean_partial(run_dir: str | Path) -> None:
    """Remove the temp dirs of saves that a kill interrupted (each a full model and optimizer)."""
    for tmp in (Path(run_dir) / "checkpoints").glob(".tmp-step-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text` so that a kill leaves the old file or the new one: temp file, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def _flat(d: dict, prefix: str = "") -> dict:
    """{"rl": {"lr": 1e-6}} -> {"rl.lr": 1e-6}"""
    out = {}
    for key, value in d.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


def check_resume(run_dir: str | Path, cfg) -> None:
    """A resume continues the run as it was configured: refuse a config that differs from RUN/config.yaml in a
    field that changes what is computed (naming the fields), rather than silently mixing two configurations."""
    from zerosearch.config import TrainConfig, from_dict, load_yaml, to_dict

    run_dir = Path(run_dir)
    if not checkpoints(run_dir):
        raise UserError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
    path = run_dir / "config.yaml"
    if not path.exists():
        return
    try:
        saved = to_dict(from_dict(TrainConfig, load_yaml(path.read_text()) or {}))
    except ConfigError as e:
        raise ConfigError(f"--resume: {path}: {e}") from None

    old, new = _flat(saved), _flat(to_dict(cfg))
    differ = [k for k in new if old.get(k) != new[k] and _computes(k)]
    if differ:
        changes = ", ".join(f"{k} ({old.get(k)!r} -> {new[k]!r})" for k in differ)
        raise ConfigError(
            f"--resume: the config differs from the run's {path} in {changes}; resume with the run's own config "
            "(omit --config and those --set), or start a new run in another --out"
        )


def save(run_dir: str | Path, step: int, actor, tokenizer, optimizer, scheduler, train_state: dict, keep: int) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{target.name}-"))
    try:
        with quiet_progress():
            actor.policy.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "value_head": actor.value_head.state_dict() if actor.value_head is not None else None,
                "rng": rng_state(),
                **train_state,
            },
            tmp / "trainer_state.pt",
        )
        for f in tmp.rglob("*"):  # on disk before the rename makes the checkpoint visible
            if f.is_file():
                _fsync(f)
        _fsync(tmp)
        if target.exists():  # a rollback re-reaches a saved step: the new one replaces it
            shutil.rmtree(target)
        tmp.rename(target)
        _fsync(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load(path: Path, actor, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG states in place; returns the train state (step, data_pos, ...)."""
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise UserError(f"checkpoint {path} holds no weights (*.safetensors)")
    weights = {k: v for f in files for k, v in load_file(f).items()}
    if hasattr(actor.policy, "peft_config"):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(actor.policy, weights)
    else:
        missing, unexpected = actor.policy.load_state_dict(weights, strict=False)
        tied = set(getattr(actor.policy, "_tied_weights_keys", None) or [])
        if unexpected or set(missing) - tied - {"lm_head.weight"}:
            raise UserError(
                f"checkpoint {path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
    try:
        state = torch.load(path / "trainer_state.pt", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(
            f"{path / 'trainer_state.pt'} holds objects other than tensors and plain containers; refusing to "
            f"unpickle them ({str(e).splitlines()[0]})"
        ) from None
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    head = state.pop("value_head")
    if head is not None:
        actor.value_head.load_state_dict(head)
    set_rng_state(state.pop("rng"))
    return state
