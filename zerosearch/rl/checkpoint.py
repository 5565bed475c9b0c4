"""Atomic, resumable checkpoints: `RUN/checkpoints/step-000042/` holds the policy (the full model, or only the
LoRA adapter) in Hugging Face format, plus `trainer_state.pt`: optimizer, scheduler, value head, RNG states
(python, numpy, torch), step and data position. A checkpoint is written to a temp dir and renamed into place,
so a kill at any moment leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from zerosearch.errors import UserError


def rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (a temp dir left by a kill is not one)."""
    root = Path(run_dir) / "checkpoints"
    return sorted(p for p in root.glob("step-*") if (p / "trainer_state.pt").exists()) if root.exists() else []


def save(run_dir: str | Path, step: int, actor, tokenizer, optimizer, scheduler, train_state: dict, keep: int) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{target.name}-"))
    try:
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
        if target.exists():  # a rollback re-reaches a saved step: the new one replaces it
            shutil.rmtree(target)
        tmp.rename(target)
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
    state = torch.load(path / "trainer_state.pt", weights_only=False)
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    head = state.pop("value_head")
    if head is not None:
        actor.value_head.load_state_dict(head)
    set_rng_state(state.pop("rng"))
    return state
