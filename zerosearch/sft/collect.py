"""Collect real search interactions for the simulator's SFT set (see docs/data.md).

The paper's path, and ours by default: a prompted agent answers training questions against a **real**
engine, several sampled trajectories per question, and every search it makes is kept — question, gold
answers, query, the k documents, the engine's identity.

Departure, on offer: a small agent (the bundled 135M model) rarely writes a good query, so its
interactions are mostly noisy and the useful side of the set stays thin. `queries="oracle"` (or `both`)
adds queries written from the question itself: the question, and on the mini-world the sub-question of
each hop (`QAExample.meta`), sent to the same real engine. Every record says which source it came from.

The output is append-only jsonl, one line per interaction; a rerun skips questions already in it. A question
whose trajectories made no search gets one line with `query: null`, so that it counts as done.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from zerosearch import prompts
from zerosearch.data.formats import iter_jsonl
from zerosearch.engines.base import SearchEngine, SearchRequest
from zerosearch.rewards import contains_answer
from zerosearch.sft.judge import documents_text

SOURCES = ("agent", "oracle", "both")


def oracle_queries(example) -> dict[str, list[str]]:
    """The question, then the sub-question of each hop where the data has them (mini-world two-hop questions), each
    with the answers its documents should hold: the gold answers for the question, the hop's own answer for a hop
    that has one (the bridge entity of a first hop; the final answer of the last)."""
    queries = {example.question: list(example.golden_answers)}
    for hop in example.meta.get("hops") or example.meta.get("sub_questions") or []:
        query = hop.get("question") or hop.get("query") if isinstance(hop, dict) else hop
        answer = hop.get("answer") if isinstance(hop, dict) else None
        if isinstance(query, str) and query.strip():
            queries.setdefault(query.strip(), [str(answer)] if answer else list(example.golden_answers))
    return queries


def done_question_ids(path: Path) -> set[str]:
    """Question ids already collected; a torn last line (a crash mid-write) is cut off so appends stay valid."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        path.write_bytes(data)
    return {str(json.loads(line)["question_id"]) for line in data.decode("utf-8").splitlines() if line.strip()}


def _record(
    example,
    engine_id: str,
    source: str,
    query: str | None,
    documents: list[dict],
    sample: int = 0,
    turn: int = 0,
    query_answers: list[str] | None = None,
) -> dict:
    record = {
        "question_id": str(example.id),
        "question": example.question,
        "golden_answers": list(example.golden_answers),
        "data_source": example.data_source,
        "query": query,
        "documents": documents,
        "engine": engine_id,
        "source": source,
        "sample": sample,
        "turn": turn,
    }
    if query_answers is not None and query_answers != list(example.golden_answers):
        record["query_answers"] = query_answers
    return record


def collect_batch(
    examples: list,
    engine: SearchEngine,
    *,
    source: str,
    generator=None,
    rollout_cfg=None,
    samples: int = 1,
    prompt_template=prompts.AGENT_PROMPT,
    k: int = 5,
    seed: int = 0,
) -> list[dict]:
    """The interaction records of a batch of questions (at least one record per question)."""
    engine_id = engine.identity()
    per_question: list[list[dict]] = [[] for _ in examples]
    if source in ("agent", "both"):
        from zerosearch.rollout import run_rollouts

        trajectories = run_rollouts(
            generator, engine, examples, rollout_cfg, seed=seed, prompt_template=prompt_template, n=samples, k=k
        )
        for i, traj in enumerate(trajectories):
            q, sample = divmod(i, samples)
            for turn, search in enumerate(traj.searches):
                per_question[q].append(
                    _record(examples[q], engine_id, "agent", search.query, search.documents, sample, turn)
                )
    if source in ("oracle", "both"):
        owners, requests, targets = [], [], []
        for q, ex in enumerate(examples):
            for query, answers in oracle_queries(ex).items():
                owners.append(q)
                targets.append(answers)
                requests.append(SearchRequest(query=query, k=k, question=ex.question, answers=list(ex.golden_answers)))
        for q, request, answers, docs in zip(owners, requests, targets, engine.search(requests), strict=True):
            documents = [d.to_dict() for d in docs]
            per_question[q].append(
                _record(examples[q], engine_id, "oracle", request.query, documents, query_answers=answers)
            )
    return [
        r for q, rows in enumerate(per_question) for r in (rows or [_record(examples[q], engine_id, source, None, [])])
    ]


def collect(
    examples: list,
    engine: SearchEngine,
    out: str | Path,
    *,
    batch_size: int = 8,
    progress: bool = True,
    seed: int = 0,
    **kw,
) -> int:
    """Append the interactions of every question not yet in `out`; returns how many questions were collected now.

    `kw` goes to `collect_batch`; each batch samples with its own seed, derived from `seed`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_question_ids(out)
    pending = [ex for ex in examples if str(ex.id) not in done]
    from rich.progress import Progress

    with Progress(disable=not progress, transient=False) as bar, out.open("a", encoding="utf-8") as f:
        task = bar.add_task(f"collect ({len(done)} done before)", total=len(pending))
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            rows = collect_batch(batch, engine, seed=seed + start, **kw)
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            f.flush()
            bar.advance(task, len(batch))
    return len(pending)


def read_records(path: str | Path) -> list[dict]:
    from zerosearch.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    return [row for _, row in iter_jsonl(path)]


def collect_stats(records: Iterable[dict]) -> dict:
    """Per source: interactions, distinct queries, and how often the documents hold a gold answer."""
    stats: dict = {"questions": 0, "questions_without_search": 0, "sources": {}}
    questions: set = set()
    per_source: dict[str, Counter] = {}
    queries: dict[str, set] = {}
    for r in records:
        questions.add(r["question_id"])
        if not r.get("query"):
            stats["questions_without_search"] += 1
            continue
        c = per_source.setdefault(r["source"], Counter())
        c["interactions"] += 1
        c["answer_in_documents"] += contains_answer(documents_text(r["documents"]), r["golden_answers"])
        queries.setdefault(r["source"], set()).add(r["query"].strip().lower())
    stats["questions"] = len(questions)
    for source, c in per_source.items():
        stats["sources"][source] = {
            "interactions": c["interactions"],
            "distinct_queries": len(queries[source]),
            "answer_in_documents_rate": round(c["answer_in_documents"] / c["interactions"], 4),
        }
    return stats
