"""The `zerosearch` command: one subcommand per stage. Each stage registers its commands from its own package."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Annotated

import click
import typer

from zerosearch.errors import UserError
from zerosearch.options import ConfigOption, SetOption

app = typer.Typer(
    help="ZeroSearch: teach LLMs to search with RL, against a simulated search engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def curriculum(
    steps: Annotated[int, typer.Option(help="total training steps m")] = 203,
    p_start: Annotated[float, typer.Option(help="p_s")] = 0.0,
    p_end: Annotated[float, typer.Option(help="p_e")] = 0.5,
    base: Annotated[float, typer.Option(help="b of Eq. 1")] = 4.0,
    schedule: Annotated[str, typer.Option(help="exponential | linear | constant")] = "exponential",
    as_json: Annotated[
        bool, typer.Option("--json", help="print the per-step probabilities for steps 0..steps as JSON")
    ] = False,
):
    """Print the noise curriculum (Eq. 1 of the paper): P(noisy documents) per training step."""
    from zerosearch.curriculum import schedule as make_schedule

    try:
        probs = make_schedule(schedule, steps, p_start, p_end, base)
    except ValueError as e:
        raise UserError(str(e)) from None
    if as_json:
        print(json.dumps([round(p, 6) for p in probs]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{schedule} schedule, p_s={p_start}, p_e={p_end}, b={base}, m={steps}")
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
    model: Annotated[str, typer.Option(help="model spec: alias, hub id or local dir")] = "smollm2-135m",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 128,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    raw: Annotated[bool, typer.Option(help="do not apply the chat template")] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Generate a completion (the chat template is applied for chat models)."""
    from zerosearch.config import ModelConfig, load_config
    from zerosearch.generation import make_generator
    from zerosearch.generation.base import chat_prompt

    cfg = load_config(ModelConfig, config, set_, {"spec": model})
    gen = make_generator(cfg)
    text = prompt if raw else chat_prompt(gen.tokenizer, prompt)
    out = gen.generate([text], max_new_tokens=max_new_tokens, temperature=temperature, seed=0)[0]
    print(out.text.strip())


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


def main() -> None:
    """Entry point: a user's mistake prints one clear line and exits 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except UserError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
