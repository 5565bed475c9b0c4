"""`zerosearch data build | inspect | convert`: the mini-world and the QA file formats."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer

data_app = typer.Typer(help="Datasets: build the mini-world, inspect and convert QA files.", no_args_is_help=True)


@data_app.command()
def build(
    out: Annotated[
        Optional[Path], typer.Option(help="output directory (default: the cache, where mini-world:* specs look)")
    ] = None,
    seed: Annotated[int, typer.Option(help="world seed: same seed, same files byte for byte")] = 0,
    size: Annotated[str, typer.Option(help="small | medium | large")] = "small",
):
    """Generate the mini-world: corpus.jsonl, train/test as parquet and jsonl, stats.json."""
    from zerosearch.data import DataError
    from zerosearch.data.miniworld import SIZES, cached
    from zerosearch.data.miniworld import build as build_world

    if size not in SIZES:
        raise DataError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    if out is None:
        out = cached(size, seed)
        stats = json.loads((out / "stats.json").read_text())
    else:
        stats = build_world(out, seed, size)
    q = stats["questions"]
    print(f"mini-world {size}, seed {seed} -> {out}")
    print(f"  corpus: {stats['corpus']['passages']} passages, {stats['corpus']['words']['mean']} words on average")
    for name in ("train", "test"):
        types = ", ".join(f"{t} {n}" for t, n in q[name].items() if t != "total")
        print(
            f"  {name}: {q[name]['total']} questions ({types}); oracle hop recall@5 "
            f"{stats['oracle_hop_recall@5'][name]:.3f}; answers in support {stats['answers_in_support'][name]:.3f}"
        )


def _inspect_corpus(path: Path, n: int) -> None:
    from zerosearch.engines.corpus import load

    passages = load(path)  # names the file and line of a bad row
    words = [len(f"{p.title or ''} {p.text}".split()) for p in passages]
    print(
        f"{path}: corpus of {len(passages)} passages, {statistics.mean(words):.1f} words on average "
        f"(min {min(words)}, max {max(words)})"
    )
    for p in passages[:n]:
        print(f"  [{p.id}] {(p.title or '') + chr(10) + p.text!r:.300}")


@data_app.command()
def inspect(
    file: Annotated[
        str, typer.Argument(help="a QA file (.parquet, .jsonl, .csv), a corpus .jsonl, or mini-world:train|test|corpus")
    ],
    n: Annotated[int, typer.Option(help="examples to show")] = 3,
):
    """Print counts (per data source, per question type) and a few examples."""
    from zerosearch.data import load_questions, resolve, resolve_corpus

    path = resolve(file)
    if path.suffix == ".jsonl" and path.is_file():
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        try:
            row = json.loads(first)
        except ValueError:
            row = None  # the question reader names the problem
        if isinstance(row, dict) and "contents" in row and "question" not in row:
            return _inspect_corpus(resolve_corpus(path), n)
    examples = load_questions(path)
    print(f"{path}: {len(examples)} questions")
    for label, counts in (
        ("data_source", Counter(ex.data_source for ex in examples)),
        ("type", Counter(ex.meta["type"] for ex in examples if "type" in ex.meta)),
    ):
        if counts:
            print(f"  by {label}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"  answers per question: {statistics.mean(len(ex.golden_answers) for ex in examples):.2f} on average")
    for ex in examples[:n]:
        kind = f" [{ex.meta['type']}]" if "type" in ex.meta else ""
        print(f"  {ex.id}{kind}: {ex.question} -> {ex.golden_answers}")


@data_app.command()
def convert(
    src: Annotated[
        str, typer.Argument(metavar="IN", help="a QA file in any supported format, or mini-world:train|test")
    ],
    dst: Annotated[
        Path,
        typer.Argument(metavar="OUT", help="output file; the format follows the extension (.parquet, .jsonl, .csv)"),
    ],
    split: Annotated[
        str, typer.Option(help="extra_info.split written to a parquet file (where the input has none)")
    ] = "test",
):
    """Convert a QA file between the ZeroSearch/Search-R1 parquet, FlashRAG jsonl and csv."""
    from zerosearch.data import load_questions, write_questions

    examples = load_questions(src)
    write_questions(examples, dst, split=split)
    print(f"wrote {len(examples)} questions to {dst}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
