"""Training curves of a run: PNG files from RUN/metrics.jsonl (matplotlib, no display needed)."""

from __future__ import annotations

import json
from pathlib import Path

from zerosearch.errors import UserError

PANELS = {
    "reward.png": ("reward and answer quality", ["reward", "f1", "em", "frac_reward_zero_std"]),
    "search.png": ("search behaviour and curriculum", ["searches", "p_noisy", "noisy_frac", "answer_rate"]),
    "optimization.png": ("optimization", ["kl", "entropy", "clip_frac", "grad_norm"]),
    "length.png": ("response length (tokens)", ["response_len", "policy_tokens"]),
    "time.png": ("seconds per step", ["generation_s", "engine_s", "logprob_s", "update_s"]),
}


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise UserError(f"{path} not found: is {run_dir} a training run directory?")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not JSON lines ({e})") from None


def plot_run(run_dir: str | Path) -> list[Path]:
    """One PNG per panel in RUN/plots/; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    if not rows:
        raise UserError(f"{Path(run_dir) / 'metrics.jsonl'} is empty: no step has finished yet")
    out = Path(run_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    steps = [r["step"] for r in rows]
    paths = []
    for name, (title, keys) in PANELS.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key in keys:
            if any(key in r for r in rows):
                ax.plot(steps, [r.get(key, float("nan")) for r in rows], marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        paths.append(out / name)
    return paths
