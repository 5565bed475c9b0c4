"""Typer options shared by every stage's CLI: one override mechanism for every command (see config.py).

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
