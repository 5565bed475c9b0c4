"""Label each collected interaction's documents `useful` (they let one answer the question) or `noisy`.

Two judges behind one interface: `rule` (a normalized gold answer occurs in the documents) and `llm` (any
Generator with `prompts.judge_prompt`). An LLM reply that names neither label is recorded as None, never a
crash. Cohen's κ reports how far two judges agree on the same interactions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from zerosearch import prompts
from zerosearch.rewards import contains_answer, normalize_answer

LABELS = ("useful", "noisy")


def documents_text(documents: Sequence[dict]) -> str:
    return " ".join(f"{d.get('title') or ''} {d.get('text') or ''}" for d in documents)


def query_answers(record: dict) -> list[str]:
    """What the query's documents must hold to be useful: a hop's own answer where the record has one (an oracle
    hop query: "where was X born?" is answered by X's birthplace, not by the two-hop question's final answer),
    else the gold answers."""
    return record.get("query_answers") or record["golden_answers"]


def judged_question(record: dict) -> tuple[str, list[str]]:
    """What the documents must answer, for a judge that reads: a hop's sub-question and its own answer where the
    record has one (as `query_answers`), else the question and its gold answers."""
    if record.get("query_answers"):
        return record["query"], list(record["query_answers"])
    return record["question"], list(record["golden_answers"])


def asks_final(record: dict) -> bool:
    """Whether the record's query asks for the final answer (the question, or a last hop), not for a bridge."""
    finals = {normalize_answer(a) for a in record["golden_answers"]}
    return any(normalize_answer(a) in finals for a in query_answers(record))


class Judge:
    name = "judge"

    def label(self, records: list[dict]) -> list[str | None]:
        """One label per record (`question`, `golden_answers`, `documents`): useful | noisy | None (unparseable)."""
        raise NotImplementedError


class RuleJudge(Judge):
    name = "rule"

    def label(self, records: list[dict]) -> list[str | None]:
        return [
            "useful" if contains_answer(documents_text(r["documents"]), query_answers(r)) else "noisy" for r in records
        ]


_VERDICT = re.compile(r"\b(not\s+useful|useful|noisy|irrelevant|relevant|yes|no)\b", re.IGNORECASE)
_MEANING = {
    "useful": "useful",
    "relevant": "useful",
    "yes": "useful",
    "not useful": "noisy",
    "noisy": "noisy",
    "irrelevant": "noisy",
    "no": "noisy",
}


def parse_verdict(text: str) -> str | None:
    """The first verdict word of a judge's reply (`useful`/`noisy`, or a synonym); None when there is none."""
    match = _VERDICT.search(text or "")
    return _MEANING[" ".join(match.group(1).lower().split())] if match else None


class LLMJudge(Judge):
    """Any Generator (in-process HF model or an OpenAI-compatible server), greedy, a few tokens per verdict."""

    name = "llm"

    def __init__(self, generator, batch_size: int = 8, max_new_tokens: int = 8):
        from zerosearch.generation.base import chat_prompt

        self.generator, self.batch_size, self.max_new_tokens = generator, batch_size, max_new_tokens
        self._chat = lambda text: chat_prompt(generator.tokenizer, text)

    def label(self, records: list[dict]) -> list[str | None]:
        from zerosearch.engines.base import Document

        labels: list[str | None] = []
        for start in range(0, len(records), self.batch_size):
            batch = records[start : start + self.batch_size]
            texts = [
                self._chat(prompts.judge_prompt(*judged_question(r), [Document(**d) for d in r["documents"]]))
                for r in batch
            ]
            outs = self.generator.generate(texts, max_new_tokens=self.max_new_tokens, temperature=0.0, seed=0)
            labels += [parse_verdict(o.text) for o in outs]
        return labels


def cohen_kappa(a: Sequence[str | None], b: Sequence[str | None]) -> float | None:
    """Cohen's κ over the items both judges labelled: (p_o − p_e) / (1 − p_e). None when no item is shared.

    When both judges use a single identical label everywhere p_e = 1; κ is then defined here as 1.0 (perfect,
    trivial agreement) rather than 0/0.
    """
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if not pairs:
        return None
    n = len(pairs)
    p_o = sum(x == y for x, y in pairs) / n
    cats = {c for pair in pairs for c in pair}
    p_e = sum((sum(x == c for x, _ in pairs) / n) * (sum(y == c for _, y in pairs) / n) for c in cats)
    if p_e == 1.0:
        return 1.0
    return (p_o - p_e) / (1 - p_e)


def judge(records: list[dict], judges: Sequence[Judge]) -> dict:
    """Label `records` in place: `labels[name]` per judge and `label` from the first. Returns the stats."""
    by_judge = {j.name: j.label(records) for j in judges}
    for i, record in enumerate(records):
        record["labels"] = {name: labels[i] for name, labels in by_judge.items()}
        record["label"] = by_judge[judges[0].name][i]
    stats: dict = {
        "interactions": len(records),
        "judges": {name: {str(c): labels.count(c) for c in (*LABELS, None)} for name, labels in by_judge.items()},
    }
    if len(judges) >= 2:
        a, b = by_judge[judges[0].name], by_judge[judges[1].name]
        both = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
        stats["agreement"] = {
            "judges": [judges[0].name, judges[1].name],
            "compared": len(both),
            "raw": sum(x == y for x, y in both) / len(both) if both else None,
            "cohen_kappa": cohen_kappa(a, b),
        }
    return stats
