"""What a run reports and watches: `metrics.jsonl` (always; TensorBoard and W&B when asked) and the collapse guard."""

from __future__ import annotations

import json
import math
import os
from collections import deque
from pathlib import Path

import numpy as np

from zerosearch import rewards
from zerosearch.errors import UserError
from zerosearch.rl import algos
from zerosearch.rl.checkpoint import write_atomic
from zerosearch.rl.policy import Batch


def rollout_metrics(trajectories, batch: Batch, rl) -> dict:
    """What the step's rollouts did, averaged over this process's trajectories."""
    searches = [s for t in trajectories for s in t.searches]
    valid = batch.valid.cpu()
    return {
        "reward": batch.rewards.cpu()[valid].mean().item() if valid.any() else 0.0,
        "f1": float(np.mean([rewards.metrics(t.answer, t.golden_answers)["f1"] for t in trajectories])),
        "em": float(np.mean([t.em for t in trajectories])),
        "answer_rate": float(np.mean([t.answer is not None for t in trajectories])),
        "frac_reward_zero_std": algos.zero_std_fraction(batch.rewards.cpu(), rl.samples_per_prompt, valid),
        "searches": len(searches) / len(trajectories),
        "noisy_frac": sum(s.mode == "noisy" for s in searches) / max(len(searches), 1),
        "response_len": float(np.mean([len(t.response_ids) for t in trajectories])),
        "policy_tokens": batch.mask.sum().item() / len(trajectories),
    }


class MetricsLogger:
    """One JSON line per step in RUN/metrics.jsonl, mirrored to TensorBoard / W&B where enabled."""

    def __init__(
        self, run_dir: Path, config: dict, tensorboard: bool = False, wandb: bool = False, resume_step: int = 0
    ):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.truncate_after(resume_step)
        self.tb = self.wandb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        if wandb:
            import wandb as wb

            self.wandb = wb.init(project="zerosearch", dir=str(run_dir), config=config, resume="allow")

    def truncate_after(self, step: int) -> None:
        """On resume (or rollback), drop lines of steps after the checkpoint: they are about to be redone. A torn
        last line (a kill or a full disk mid-write) is dropped too; the rewrite is atomic."""
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines()
        rows = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rows.append((json.loads(line)["step"], line))
            except (ValueError, KeyError, TypeError):
                if any(rest.strip() for rest in lines[i + 1 :]):
                    raise UserError(f"{self.path}, line {i + 1}: not a metrics record: {line[:80]!r}") from None
        write_atomic(self.path, "".join(line + "\n" for s, line in rows if s <= step))

    def log(self, metrics: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(metrics) + "\n")
            f.flush()
            os.fsync(f.fileno())
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "step"}
        if self.tb is not None:
            for k, v in numbers.items():
                self.tb.add_scalar(k, v, metrics["step"])
        if self.wandb is not None:
            self.wandb.log(numbers, step=metrics["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


class CollapseGuard:
    """Flags a step whose loss is NaN/inf, a reward that fell far below its best, or an entropy near zero.

    Reward collapse: the mean reward over the last `window` steps is below `ratio` x the best such mean seen,
    once that best is worth losing (>= 0.1). Entropy collapse: mean entropy below `min_entropy` for `window` steps.
    """

    def __init__(self, window: int = 5, ratio: float = 0.2, min_entropy: float = 0.01):
        self.window, self.ratio, self.min_entropy = window, ratio, min_entropy
        self.rewards: deque[float] = deque(maxlen=window)
        self.entropies: deque[float] = deque(maxlen=window)
        self.best = 0.0

    def check(self, metrics: dict) -> str | None:
        """None if the step looks healthy, else why not."""
        loss = metrics.get("loss", 0.0)
        if not math.isfinite(loss) or not math.isfinite(metrics.get("grad_norm", 0.0)):
            return f"non-finite loss or gradient (loss={loss}, grad_norm={metrics.get('grad_norm')})"
        self.rewards.append(metrics["reward"])
        self.entropies.append(metrics.get("entropy", 1.0))
        if len(self.rewards) < self.window:
            return None
        mean = sum(self.rewards) / self.window
        self.best = max(self.best, mean)
        if self.best >= 0.1 and mean < self.ratio * self.best:
            return (
                f"reward collapse: mean reward of the last {self.window} steps {mean:.3f} "
                f"< {self.ratio} x best {self.best:.3f}"
            )
        if max(self.entropies) < self.min_entropy:
            return f"entropy collapse: entropy < {self.min_entropy} for {self.window} steps"
        return None

    def state_dict(self) -> dict:
        return {"rewards": list(self.rewards), "entropies": list(self.entropies), "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.rewards = deque(state["rewards"], maxlen=self.window)
        self.entropies = deque(state["entropies"], maxlen=self.window)
        self.best = state["best"]
