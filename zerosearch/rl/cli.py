"""`zerosearch train`, `zerosearch warmstart`, `zerosearch demo` and `zerosearch plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from zerosearch.errors import UserError
from zerosearch.options import ConfigOption, SetOption, load


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        config: ConfigOption = None,
        set_: SetOption = None,
        model: Annotated[
            Optional[str], typer.Option(help="policy model spec (alias, hub id, local dir) (= model.spec)")
        ] = None,
        algo: Annotated[
            Optional[str], typer.Option(help="an algorithm of rl/algos.py's registry (docs/training.md) (= rl.algo)")
        ] = None,
        steps: Annotated[Optional[int], typer.Option(help="training steps (= rl.steps)")] = None,
        out: Annotated[Optional[str], typer.Option(help="run directory (= out)")] = None,
        resume: Annotated[bool, typer.Option(help="continue the run in --out from its last checkpoint")] = False,
        trainer: Annotated[
            str, typer.Option(help="ours (zerosearch/rl/trainer.py) | trl (TRL's GRPOTrainer with our rollout)")
        ] = "ours",
        trl: Annotated[
            Optional[list[str]],
            typer.Option(help="--trainer trl: set a GRPOConfig field, KEY=VALUE (repeatable), e.g. use_vllm=true"),
        ] = None,
    ):
        """Train a search policy with RL against the simulator and the noise curriculum (default recipe:
        zerosearch/recipes/tiny.yaml). `--trainer trl` runs it through TRL's GRPOTrainer (docs/integrations.md)."""
        from zerosearch.config import TrainConfig, load_config, parse_override

        if trainer not in ("ours", "trl"):
            raise UserError(f"--trainer must be ours or trl, got {trainer!r}")
        if trl and trainer != "trl":
            raise UserError("--trl sets GRPOConfig fields: it needs --trainer trl")
        path = config or "tiny"
        if resume and config is None and out and (Path(out) / "config.yaml").exists():
            path = Path(out) / "config.yaml"  # a resumed run keeps its own recipe
        cfg = load_config(
            TrainConfig, path, set_, {"model.spec": model, "rl.algo": algo, "rl.steps": steps, "out": out}
        )
        if trainer == "trl":
            from zerosearch.integrations.trl import train as run_trl

            bad = next((item for item in trl or [] if "=" not in item), None)
            if bad is not None:
                raise UserError(f"--trl expects KEY=VALUE (a GRPOConfig field), got {bad!r}")
            run_dir = run_trl(cfg, resume=resume, **dict(parse_override(item) for item in trl or []))
            typer.echo(f"run: {run_dir} (TRL checkpoints, final/); logs: {run_dir}/checkpoint-*/trainer_state.json")
            return
        from zerosearch.rl.trainer import train as run

        run_dir = run(cfg, resume=resume)
        typer.echo(f"run: {run_dir} (metrics.jsonl, checkpoints/, trajectories/); curves: zerosearch plot {run_dir}")

    @app.command()
    def warmstart(
        config: ConfigOption = None,
        set_: SetOption = None,
        model: Annotated[Optional[str], typer.Option(help="policy model spec to start from (= model.spec)")] = None,
        out: Annotated[
            Optional[Path], typer.Option(help="new directory for the warm-started model (= warmstart.out)")
        ] = None,
        examples: Annotated[
            Optional[int],
            typer.Option(
                help="oracle demonstrations (mini-world train, rejection-sampled on BM25) (= warmstart.examples)"
            ),
        ] = None,
        steps: Annotated[Optional[int], typer.Option(help="SFT steps (= warmstart.steps)")] = None,
        lr: Annotated[Optional[float], typer.Option(help="SFT learning rate (= warmstart.lr)")] = None,
        batch_size: Annotated[
            Optional[int], typer.Option(help="demonstrations per SFT step (= warmstart.batch_size)")
        ] = None,
    ):
        """Optional, before RL (a departure from the paper): a short SFT on oracle search demonstrations, so that a
        small policy follows the search protocol. Rollout limits, k and lora_r come from the recipe
        (zerosearch/recipes/tiny.yaml)."""
        from zerosearch.rl.warmstart import warm_start_from

        flags = {"model.spec": model, "warmstart.out": out and str(out), "warmstart.examples": examples}
        flags |= {"warmstart.steps": steps, "warmstart.lr": lr, "warmstart.batch_size": batch_size}
        cfg = load(config, set_, flags, recipe="tiny")
        path = warm_start_from(cfg, cfg.warmstart.out, log=typer.echo)
        typer.echo(f"warm-started model: {path} (statistics in warmstart.json); next: zerosearch train --model {path}")

    @app.command()
    def plot(
        run_dir: Annotated[Path, typer.Argument(help="a training run directory (holds metrics.jsonl)")],
        config: ConfigOption = None,
        set_: SetOption = None,
    ):
        """Write PNG training curves (reward, F1/EM, searches, KL, entropy, ...) into RUN_DIR/plots/."""
        from zerosearch.rl.plot import plot_run

        load(config, set_)  # nothing to configure here, but a bad recipe or --set is still an error
        for path in plot_run(run_dir):
            typer.echo(str(path))
