"""Build the mini-world dataset: corpus, train/test questions in every format, and its solvability checks.

`build(out, seed, size)` writes `corpus.jsonl`, `{train,test}.{parquet,jsonl}` and `stats.json`.
The split is by *fact*: test questions are drawn first, and no train question uses any fact a test question
uses (so training on train cannot memorise a test answer). The checks: every answer occurs in its
supporting passages, and an oracle BM25 query per hop (the hop's own sub-question) finds that hop's
passage in the top 5 — the questions are solvable by search, and only by search.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from zerosearch.config import cache_dir
from zerosearch.data.corpus import render
from zerosearch.data.formats import QAExample, write_questions
from zerosearch.data.questions import Question, comparison, single_hop, two_hop
from zerosearch.data.world import build_world
from zerosearch.rewards import normalize_answer

VERSION = 2  # bump when the generator changes: cached worlds of another version are rebuilt
DATA_SOURCE = "miniworld"
TYPES = ("single_hop", "two_hop", "comparison")
TRAIN_MIX = {"single_hop": 0.5, "two_hop": 0.4, "comparison": 0.1}


@dataclass(frozen=True)
class Size:
    scale: float  # entities relative to `small`
    test: dict  # test questions per type
    train: int  # train questions, mixed as TRAIN_MIX


SIZES = {
    "small": Size(1.0, {"single_hop": 100, "two_hop": 80, "comparison": 20}, 1500),
    "medium": Size(7.0, {"single_hop": 500, "two_hop": 400, "comparison": 100}, 6000),
    "large": Size(30.0, {"single_hop": 1500, "two_hop": 1200, "comparison": 300}, 30000),
}


def split(pool: list[Question], size: Size, rng: random.Random) -> tuple[list[Question], list[Question]]:
    """(train, test): test drawn per type at random, train only from questions sharing no fact with test."""
    pool = rng.sample(pool, len(pool))
    need, test = dict(size.test), []
    for q in pool:
        if need[q.type] > 0:
            need[q.type] -= 1
            test.append(q)
    test_facts, test_texts = {f for q in test for f in q.facts}, {q.text for q in test}
    rest = [q for q in pool if test_facts.isdisjoint(q.facts) and q.text not in test_texts]
    train = [q for t in TYPES for q in [q for q in rest if q.type == t][: round(size.train * TRAIN_MIX[t])]]
    return rng.sample(train, len(train)), test


def generate(seed: int = 0, size: str = "small") -> tuple[list[dict], list[QAExample], list[QAExample]]:
    """(passages, train, test) of the world `seed` at `size`, deterministic."""
    world = build_world(seed, SIZES[size].scale)
    passages, where = render(world, seed)
    rng = random.Random(f"questions-{seed}")
    pool = single_hop(world, where) + two_hop(world, where) + comparison(world, where, rng)
    train, test = split(pool, SIZES[size], rng)

    def as_examples(qs, name):
        return [
            QAExample(f"{DATA_SOURCE}_{name}_{i}", q.text, q.answers, DATA_SOURCE, q.meta()) for i, q in enumerate(qs)
        ]

    return passages, as_examples(train, "train"), as_examples(test, "test")


def answers_in_support(passages: list[dict], examples: list[QAExample]) -> float:
    """Share of questions whose first gold answer occurs (normalized) in its supporting passages."""
    text = {p["id"]: normalize_answer(p["contents"]) for p in passages}
    ok = [
        f" {normalize_answer(ex.golden_answers[0])} " in f" {' '.join(text[i] for i in ex.meta['supporting_ids'])} "
        for ex in examples
    ]
    return sum(ok) / len(ok)


def bm25_searcher(passages: list[dict], k: int = 5):
    """A function from queries to the ids of their top-k passages (bm25s, English stemming and stopwords)."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([p["contents"] for p in passages], stemmer=stemmer, show_progress=False), show_progress=False
    )
    ids = [p["id"] for p in passages]

    def search(queries: list[str]) -> list[set[str]]:
        tokens = bm25s.tokenize(queries, stemmer=stemmer, return_ids=False, show_progress=False)
        top, _ = retriever.retrieve(tokens, k=k, show_progress=False)
        return [{ids[j] for j in row} for row in top]

    return search


def oracle_hop_recall(search, examples: list[QAExample], max_hops: int = 5000) -> tuple[float, int]:
    """(recall, hops): each distinct hop's sub-question as the query; a hit = the hop's passage retrieved.
    Beyond `max_hops` distinct hops, a seeded sample of them (retrieval dominates the build time)."""
    hops = sorted({(h["question"], h["passage_id"]) for ex in examples for h in ex.meta["hops"]})
    if len(hops) > max_hops:
        hops = sorted(random.Random(0).sample(hops, max_hops))
    hits = sum(pid in found for (_, pid), found in zip(hops, search([q for q, _ in hops])))
    return hits / len(hops), len(hops)


def one_query_support(search, examples: list[QAExample]) -> dict[str, float]:
    """Per type, the share of questions whose whole text as one query retrieves every supporting passage:
    near 0 for two-hop questions, which is what makes a second search necessary."""
    found = search([ex.question for ex in examples])
    return {
        t: round(
            statistics.mean(
                float(set(ex.meta["supporting_ids"]) <= f) for ex, f in zip(examples, found) if ex.meta["type"] == t
            ),
            4,
        )
        for t in TYPES
        if any(ex.meta["type"] == t for ex in examples)
    }


def statistics_of(passages: list[dict], train: list[QAExample], test: list[QAExample], seed: int, size: str) -> dict:
    words = [len(p["contents"].split()) for p in passages]
    stats = {
        "version": VERSION,
        "seed": seed,
        "size": size,
        "corpus": {
            "passages": len(passages),
            "entities": dict(Counter(p["id"].split("-")[0] for p in passages if not p["id"].endswith("-career"))),
            "words": {"min": min(words), "mean": round(statistics.mean(words), 1), "max": max(words)},
        },
        "questions": {},
        "answers_in_support": {},
        "oracle_hop_recall@5": {},
        "oracle_hops": {},
    }
    search = bm25_searcher(passages, k=5)
    for name, examples in (("train", train), ("test", test)):
        counts = Counter(ex.meta["type"] for ex in examples)
        stats["questions"][name] = {t: counts[t] for t in TYPES} | {"total": len(examples)}
        stats["answers_in_support"][name] = answers_in_support(passages, examples)
        recall, hops = oracle_hop_recall(search, examples)
        stats["oracle_hop_recall@5"][name], stats["oracle_hops"][name] = round(recall, 4), hops
    stats["test_question_as_one_query_full_support@5"] = one_query_support(search, test)
    return stats


def build(out: str | Path, seed: int = 0, size: str = "small") -> dict:
    """Write the dataset files into `out` and return the statistics (also written to `out/stats.json`)."""
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    passages, train, test = generate(seed, size)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in passages)
    for name, examples in (("train", train), ("test", test)):
        write_questions(examples, out / f"{name}.jsonl")
        write_questions(examples, out / f"{name}.parquet", split=name)
    stats = statistics_of(passages, train, test, seed, size)
    stats["build_seconds"] = round(time.perf_counter() - start, 2)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def cached(size: str = "small", seed: int = 0) -> Path:
    """The world's directory in the cache, built on first use (into a temp dir, then renamed: atomic)."""
    final = cache_dir() / "mini-world" / f"{size}-seed{seed}"
    if _current(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(tmp, seed, size)
        if _current(final):  # another process finished first
            return final
        if final.exists():  # an older version: move it aside, then swap
            stale = Path(tempfile.mkdtemp(prefix=f".{final.name}-stale-", dir=final.parent))
            os.replace(final, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, final)
    except OSError:
        if not _current(final):  # not a concurrent builder winning the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _current(path: Path) -> bool:
    try:
        return json.loads((path / "stats.json").read_text())["version"] == VERSION
    except (OSError, ValueError, KeyError):
        return False
