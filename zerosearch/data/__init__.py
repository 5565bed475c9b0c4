"""QA data: the file formats people have, and the mini-world (a generated fictional world that forces search).

Everywhere a dataset or a corpus is accepted, a path works, and so do `mini-world:train`, `mini-world:test` and
`mini-world:corpus`: the `small` world of seed 0, built once into the cache directory; and `mini-world:pool`, the
48 training questions that the simulator `mini-world:simulator` was taught (the tiny recipe's RL questions).
"""

from __future__ import annotations

import random
from pathlib import Path

from zerosearch.data.formats import DataError, QAExample, iter_jsonl, read_questions, write_questions

MINI_WORLD = "mini-world:"
MINI_WORLD_FILES = {"train": "train.jsonl", "test": "test.jsonl", "corpus": "corpus.jsonl"}
POOL = "pool"

__all__ = ["DataError", "QAExample", "load_questions", "read_questions", "resolve", "resolve_corpus", "write_questions"]


def resolve(spec: str | Path) -> Path:
    """A path, or a `mini-world:<part>` spec turned into the cached file (building the world if needed)."""
    spec = str(spec)
    if not spec.startswith(MINI_WORLD):
        return Path(spec).expanduser()
    part = spec[len(MINI_WORLD) :]
    if part == POOL:
        # An import upwards: the simulator's recipe chooses these questions (BM25 and the judge; no model).
        from zerosearch.sft.miniworld import pool_file

        return pool_file()
    if part not in MINI_WORLD_FILES:
        parts = ", ".join(MINI_WORLD + p for p in (*MINI_WORLD_FILES, POOL))
        raise DataError(f"unknown spec {spec!r}: use one of {parts}")
    from zerosearch.data.miniworld import cached

    return cached("small", 0) / MINI_WORLD_FILES[part]


def load_questions(
    spec: str | Path, data_source: str | None = None, limit: int | None = None, seed: int = 0
) -> list[QAExample]:
    """Questions from a file in any supported format or `mini-world:train|test`; optionally only those of one
    `data_source`, and a seeded random subset of `limit` of them (kept in file order)."""
    if str(spec) == MINI_WORLD + "corpus":
        raise DataError("mini-world:corpus is a corpus, not questions: use mini-world:train or mini-world:test")
    examples = read_questions(resolve(spec))
    if data_source is not None:
        available = sorted({ex.data_source for ex in examples})
        if data_source not in available:
            raise DataError(f"{spec}: no data_source {data_source!r} (available: {', '.join(available)})")
        examples = [ex for ex in examples if ex.data_source == data_source]
    if limit is not None and limit < len(examples):
        if limit < 0:
            raise DataError(f"limit must be >= 0, got {limit}")
        keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
        examples = [examples[i] for i in keep]
    return examples


def resolve_corpus(spec: str | Path) -> Path:
    """The corpus jsonl (`{"id", "contents"}` per line) named by a path or `mini-world:corpus`."""
    if str(spec).startswith(MINI_WORLD) and str(spec) != MINI_WORLD + "corpus":
        raise DataError(f"{spec} is a question set, not a corpus: use mini-world:corpus")
    path = resolve(spec)
    if path.suffix != ".jsonl":
        raise DataError(f'{path}: a corpus is a .jsonl file of {{"id", "contents"}} lines')
    if not path.is_file():
        raise DataError(f"{path}: no such corpus file")
    n, row = next(iter_jsonl(path), (1, {}))  # the first line tells a corpus from a QA file
    if not isinstance(row.get("contents"), str):
        raise DataError(f"{path}: line {n}: a corpus line needs a string field 'contents' (\"Title\\ntext\")")
    return path
