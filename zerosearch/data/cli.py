"""`zerosearch data build | inspect | convert | prepare`: the mini-world, the QA file formats, the paper's datasets."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer

from zerosearch.options import ConfigOption, SetOption, load

data_app = typer.Typer(help="Datasets: build the mini-world, inspect and convert QA files.", no_args_is_help=True)


@data_app.command()
def build(
    out: Annotated[
        Optional[Path],
        typer.Option(help="output directory (default: the cache, where mini-world:* specs look) (= world.out)"),
    ] = None,
    seed: Annotated[
        Optional[int], typer.Option(help="world seed: same seed, same files byte for byte (= world.seed)")
    ] = None,
    size: Annotated[Optional[str], typer.Option(help="small | medium | large (= world.size)")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Generate the mini-world: corpus.jsonl, train/test as parquet and jsonl, stats.json."""
    from zerosearch.data import DataError
    from zerosearch.data.miniworld import SIZES, cached
    from zerosearch.data.miniworld import build as build_world

    world = load(config, set_, {"world.out": out and str(out), "world.seed": seed, "world.size": size}).world
    size, seed = world.size, world.seed
    if size not in SIZES:
        raise DataError(f"world.size must be one of {', '.join(SIZES)}, got {size!r}")
    if world.out:
        out = Path(world.out)
        stats = build_world(out, seed, size)
    else:
        out = cached(size, seed)
        stats = json.loads((out / "stats.json").read_text())
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
    from zerosearch.data.formats import iter_jsonl
    from zerosearch.errors import UserError

    contents = []
    for lineno, row in iter_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("contents"), str):
            raise UserError(f"{path}: line {lineno}: each line needs a string field 'contents'")
        contents.append((row.get("id"), row["contents"]))
    if not contents:
        raise UserError(f"{path}: the corpus holds no documents")
    words = [len(c.split()) for _, c in contents]
    print(
        f"{path}: corpus of {len(contents)} passages, {statistics.mean(words):.1f} words on average "
        f"(min {min(words)}, max {max(words)})"
    )
    for doc_id, c in contents[:n]:
        print(f"  [{doc_id}] {c!r:.300}")


@data_app.command()
def inspect(
    file: Annotated[
        str, typer.Argument(help="a QA file (.parquet, .jsonl, .csv), a corpus .jsonl, or mini-world:train|test|corpus")
    ],
    n: Annotated[int, typer.Option(help="examples to show")] = 3,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Print counts (per data source, per question type) and a few examples."""
    from zerosearch.data import load_questions, resolve, resolve_corpus

    load(config, set_)  # nothing to configure here, but a bad recipe or --set is still an error
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
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Convert a QA file between the ZeroSearch/Search-R1 parquet, FlashRAG jsonl and csv."""
    from zerosearch.data import load_questions, write_questions

    load(config, set_)  # nothing to configure here, but a bad recipe or --set is still an error
    examples = load_questions(src)
    write_questions(examples, dst, split=split)
    print(f"wrote {len(examples)} questions to {dst}")


@data_app.command()
def prepare(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(
            metavar="NAME...",
            help="nq, triviaqa, popqa, hotpotqa, 2wikimultihopqa, musique, bamboogle (default: all seven)",
        ),
    ] = None,
    source: Annotated[
        Optional[str],
        typer.Option(
            help="a FlashRAG folder (NAME/train.jsonl, NAME/test.jsonl, …) or `hub` (needs internet) (= prepare.source)"
        ),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="output directory for train.parquet and test.parquet (= prepare.out)")
    ] = None,
    train: Annotated[
        Optional[str],
        typer.Option(help="datasets whose train split makes train.parquet (the paper: nq,hotpotqa) (= prepare.train)"),
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """The paper's data as ZeroSearch/Search-R1 parquet: train (NQ + HotpotQA) and the seven test sets."""
    from zerosearch.data.prepare import DATASETS
    from zerosearch.data.prepare import prepare as run

    cfg = load(config, set_, {"prepare.source": source, "prepare.out": out and str(out), "prepare.train": train})
    out = Path(cfg.prepare.out)
    counts = run(
        names or list(DATASETS),
        cfg.prepare.source,
        out,
        train=[n.strip() for n in cfg.prepare.train.split(",") if n.strip()],
        log=lambda line: typer.echo(line, err=True),
    )
    if counts["train"]:
        parts = ", ".join(f"{n} {c}" for n, c in counts["train"].items())
        print(f"{out / 'train.parquet'}: {sum(counts['train'].values())} questions ({parts})")
    parts = ", ".join(f"{n} {c['questions']} ({c['split']})" for n, c in counts["test"].items())
    print(f"{out / 'test.parquet'}: {sum(c['questions'] for c in counts['test'].values())} questions ({parts})")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
