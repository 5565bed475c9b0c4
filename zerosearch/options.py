"""Typer options shared by every stage's CLI: one override mechanism for every command (see docs/configuration.md).

Every command takes `--config` and `--set` and loads the same root config (`TrainConfig`): defaults < YAML recipe <
`--set section.field=value` < the command's typed flags, which are shorthands for dotted fields.
Kept apart from `zerosearch.cli` so that stage CLIs import these and the root CLI imports the stages, never back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="YAML recipe (a path, or a name of a shipped recipe: tiny, paper)"),
]
SetOption = Annotated[
    Optional[list[str]], typer.Option("--set", help="override a config field: section.field=value (repeatable)")
]


def load(config: Path | str | None, set_: list[str] | None, flags: dict | None = None, recipe: str | None = None):
    """The root config of a command: `recipe` is its default when no `--config` is given; `flags` maps dotted
    field names to the typed flags' values (None = not given)."""
    from zerosearch.config import TrainConfig, load_config

    return load_config(TrainConfig, config or recipe, set_, flags)
