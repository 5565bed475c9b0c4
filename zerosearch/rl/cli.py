"""`zerosearch train`, `zerosearch demo` and `zerosearch plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from zerosearch.cli import ConfigOption, SetOption
from zerosearch.config import UserError


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        config: ConfigOption = None,
        set_: SetOption = None,
        model: Annotated[Optional[str], typer.Option(help="policy model spec (alias, hub id, local dir)")] = None,
        algo: Annotated[Optional[str], typer.Option(help="grpo | ppo | reinforce_pp | rloo")] = None,
        steps: Annotated[Optional[int], typer.Option(help="training steps")] = None,
        out: Annotated[Optional[str], typer.Option(help="run directory")] = None,
        resume: Annotated[bool, typer.Option(help="continue the run in --out from its last checkpoint")] = False,
    ):
        """Train a search policy with RL against the simulator and the noise curriculum (default recipe: configs/tiny.yaml)."""
        from zerosearch.config import TrainConfig, load_config
        from zerosearch.rl.trainer import train as run

        path = config or Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
        if resume and config is None and out and (Path(out) / "config.yaml").exists():
            path = Path(out) / "config.yaml"  # a resumed run keeps its own recipe
        cfg = load_config(TrainConfig, path, set_, {"model.spec": model, "rl.algo": algo, "rl.steps": steps, "out": out})
        run_dir = run(cfg, resume=resume)
        typer.echo(f"run: {run_dir} (metrics.jsonl, checkpoints/, trajectories/); curves: zerosearch plot {run_dir}")

    @app.command()
    def plot(run_dir: Annotated[Path, typer.Argument(help="a training run directory (holds metrics.jsonl)")]):
        """Write PNG training curves (reward, F1/EM, searches, KL, entropy, ...) into RUN_DIR/plots/."""
        from zerosearch.rl.plot import plot_run

        for path in plot_run(run_dir):
            typer.echo(str(path))

    @app.command()
    def demo(
        out: Annotated[Path, typer.Option(help="where the demo writes its run, evaluations and plots")] = Path("runs/demo"),
        steps: Annotated[int, typer.Option(help="RL steps")] = 0,
        n_eval: Annotated[int, typer.Option(help="held-out questions evaluated before and after")] = 0,
        model: Annotated[str, typer.Option(help="policy model")] = "smollm2-135m",
    ):
        """The whole loop at toy scale, offline on a CPU: mini-world, evaluate, train with the simulator, evaluate again."""
        from zerosearch.rl.demo import run_demo

        if steps < 0 or n_eval < 0:
            raise UserError("--steps and --n-eval must be >= 0")
        run_demo(out, steps=steps or None, n_eval=n_eval or None, model=model)
