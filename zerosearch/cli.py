"""The `zerosearch` command: one subcommand per stage. Each stage registers its commands from its own package."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from zerosearch.errors import UserError
from zerosearch.options import ConfigOption, SetOption, load

app = typer.Typer(
    help="ZeroSearch: teach LLMs to search with RL, against a simulated search engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def curriculum(
    steps: Annotated[Optional[int], typer.Option(help="total training steps m (= rl.steps)")] = None,
    p_start: Annotated[Optional[float], typer.Option(help="p_s (= curriculum.p_start)")] = None,
    p_end: Annotated[Optional[float], typer.Option(help="p_e (= curriculum.p_end)")] = None,
    base: Annotated[Optional[float], typer.Option(help="b of Eq. 1 (= curriculum.base)")] = None,
    schedule: Annotated[
        Optional[str], typer.Option(help="exponential | linear | constant (= curriculum.schedule)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the per-step probabilities for steps 0..steps as JSON")
    ] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Print the noise curriculum (Eq. 1 of the paper): P(noisy documents) per training step."""
    from zerosearch.curriculum import schedule as make_schedule

    flags = {"rl.steps": steps, "curriculum.p_start": p_start, "curriculum.p_end": p_end, "curriculum.base": base}
    cfg = load(config, set_, flags | {"curriculum.schedule": schedule})
    c, steps = cfg.curriculum, cfg.rl.steps
    try:
        probs = make_schedule(c.schedule, steps, c.p_start, c.p_end, c.base)
    except ValueError as e:
        raise UserError(str(e)) from None
    if as_json:
        print(json.dumps([round(p, 6) for p in probs]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{c.schedule} schedule, p_s={c.p_start}, p_e={c.p_end}, b={c.base}, m={steps}")
    table.add_column("step", justify="right")
    table.add_column("i/m", justify="right")
    table.add_column("p(noisy)", justify="right")
    marks = sorted({round(steps * f) for f in (0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)})
    for i in marks:
        table.add_row(str(i), f"{i / steps:.2f}", f"{probs[i]:.3f}")
    Console().print(table)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="the user message")],
    model: Annotated[Optional[str], typer.Option(help="model spec: alias, hub id or local dir (= model.spec)")] = None,
    max_new_tokens: Annotated[
        Optional[int], typer.Option(help="tokens to generate (= generate.max_new_tokens)")
    ] = None,
    temperature: Annotated[Optional[float], typer.Option(help="0 = greedy (= generate.temperature)")] = None,
    raw: Annotated[Optional[bool], typer.Option(help="do not apply the chat template (= generate.raw)")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Generate a completion (the chat template is applied for chat models)."""
    from zerosearch.generation import make_generator
    from zerosearch.generation.base import chat_prompt

    flags = {"model.spec": model, "generate.max_new_tokens": max_new_tokens, "generate.temperature": temperature}
    cfg = load(config, set_, flags | {"generate.raw": raw})
    gen = make_generator(cfg.model)
    text = prompt if cfg.generate.raw else chat_prompt(gen.tokenizer, prompt)
    out = gen.generate([text], max_new_tokens=cfg.generate.max_new_tokens, temperature=cfg.generate.temperature, seed=0)
    print(out[0].text.strip())


@app.command()
def demo(
    out: Annotated[
        Optional[Path], typer.Option(help="where the demo writes its run, evaluations and plots (= demo.out)")
    ] = None,
    steps: Annotated[Optional[int], typer.Option(help="RL steps (= demo.steps)")] = None,
    n_eval: Annotated[
        Optional[int], typer.Option(help="held-out questions evaluated before and after (= demo.n_eval)")
    ] = None,
    model: Annotated[Optional[str], typer.Option(help="policy model (= model.spec)")] = None,
    warm_start: Annotated[
        Optional[bool],
        typer.Option(
            "--warm-start/--no-warm-start",
            help="SFT on oracle demonstrations (the warmstart section) before RL; the paper has none "
            "(= demo.warm_start)",
        ),
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """The whole loop at toy scale, offline on a CPU: mini-world, evaluate, warm start, train with the
    simulator, evaluate again (default recipe: tiny; the demo's sizes are its `demo` section)."""
    from zerosearch.demo import RECIPE, run_demo

    flags = {"demo.out": out and str(out), "demo.steps": steps, "demo.n_eval": n_eval, "model.spec": model}
    run_demo(load(config, set_, flags | {"demo.warm_start": warm_start}, recipe=RECIPE))


# Each stage's package exposes `register(app)`; the import stays light (heavy imports live inside commands).
STAGES = (
    "zerosearch.data.cli",
    "zerosearch.engines.cli",
    "zerosearch.serve.cli",
    "zerosearch.rollout.cli",
    "zerosearch.rl.cli",
    "zerosearch.sft.cli",
    "zerosearch.eval.cli",
)
for _module in STAGES:
    importlib.import_module(_module).register(app)


# Recent typer vendors its own click, whose exceptions are not click's: catch both.
_CLICK_ERRORS = (click.ClickException, getattr(typer, "TyperException", click.ClickException))


def main() -> None:
    """Entry point: a user's mistake prints one clear line and exits 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except (click.exceptions.Exit, typer.Exit) as e:
        sys.exit(e.exit_code)
    except _CLICK_ERRORS as e:
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        sys.exit(130)
    except UserError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
