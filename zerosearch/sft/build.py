"""Turn judged interactions into the simulator's SFT set: chat pairs in the exact format of the released simulators.

Each example is TRL's conversational prompt-completion format: `prompt` = an empty system message and the
SFT simulator prompt of the labelled mode as the user message (what `SimulatorEngine(prompt="sft")` sends),
`completion` = the assistant message, the real documents as `Doc 1: …` lines. Prompt-completion rather than
a single `messages` list: TRL then puts the loss on the assistant turn for any chat template, whereas
`assistant_only_loss` needs `{% generation %}` markers that most templates (SmolLM2's included) lack.

Documents are cut to `max_doc_words` words, at a sentence end where there is one (the prompt asks for "about 30
words"); a useful example whose gold answer only occurred in the cut-off part would teach the model to omit the
answer, so it is dropped.
"""

from __future__ import annotations

import random
from collections import Counter

from zerosearch import prompts
from zerosearch.engines.base import Document
from zerosearch.rewards import contains_answer, normalize_answer
from zerosearch.sft.judge import LABELS, asks_final, documents_text, query_answers


def cut(text: str, max_words: int) -> str:
    """At most `max_words` words, ending at the last sentence end among them when that keeps at least half:
    a document that stops mid-sentence teaches the model to ramble on rather than start the next document."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    ends = [i for i, w in enumerate(words[:max_words]) if w.endswith((".", "!", "?")) and i + 1 >= max_words / 2]
    return " ".join(words[: ends[-1] + 1 if ends else max_words])


def render_documents(documents: list[dict], k: int, max_doc_words: int) -> list[dict]:
    """The first k documents, titles folded into the text (the simulator writes `Doc i: text`), cut to length."""
    out = []
    for d in documents[:k]:
        text, title = (d.get("text") or "").strip(), (d.get("title") or "").strip()
        if title and not text.lower().startswith(title.lower()):
            text = f"{title}: {text}"
        if text:
            out.append({"text": cut(text, max_doc_words)})
    return out


def example(record: dict, documents: list[dict]) -> dict:
    user = prompts.simulator_sft_prompt(record["query"], record["question"], record["golden_answers"], record["label"])
    return {
        "prompt": [{"role": "system", "content": ""}, {"role": "user", "content": user}],
        "completion": [
            {"role": "assistant", "content": prompts.format_documents([Document(d["text"]) for d in documents])}
        ],
        "mode": record["label"],
        "question_id": str(record["question_id"]),
        "question": record["question"],
        "golden_answers": list(record["golden_answers"]),
        "query": record["query"],
        "query_answers": list(query_answers(record)),
        "source": record.get("source", ""),
    }


def split_by_document(record: dict, k: int) -> list[dict]:
    """Both modes from one query's documents, judged one by one: `useful` = the documents that hold the query's
    answers (`query_answers`: a hop's own answer, else the gold answers), then documents that hold no answer, up to
    k; `noisy` = the first k documents that hold no answer (when there are k). Collect more than k.

    The record-level label says whether *the query's* results hold the answer; a sub-question's results (the
    first hop of a two-hop question) then come out noisy while they answer the query itself, and teach the
    noisy mode to answer the query. Paired examples of one query teach exactly the difference: the answer.
    A first hop's useful documents hold the bridge, never the final answer beside it (such a document is dropped):
    a simulator taught that writes the final answer for any query, and RL against it learns to stop after one
    search."""
    if not (record.get("query") or "").strip() or not record.get("documents"):
        return [record]
    targets, finals = query_answers(record), record["golden_answers"]
    shortcut = [] if asks_final(record) else finals
    hits, clean = [], []
    for d in record["documents"]:
        text = documents_text([d])
        if contains_answer(text, targets):
            if not contains_answer(text, shortcut):
                hits.append(d)
        elif not contains_answer(text, finals):
            clean.append(d)
    out = [record | {"label": "useful", "documents": (hits + clean)[:k]}] if hits else []
    if len(clean) >= k:
        out.append(record | {"label": "noisy", "documents": clean[:k]})
    return out


def build(
    records: list[dict],
    *,
    k: int = 5,
    max_doc_words: int = 40,
    balance: float = 1.0,
    val_fraction: float = 0.1,
    seed: int = 0,
    per_document: bool = False,
) -> tuple[list[dict], list[dict], dict]:
    """(train, validation, stats). `balance` caps the majority mode at `balance` × the minority (0 = off);
    `per_document` labels documents, not interactions (`split_by_document`).

    The split is by question, so validation questions (used by `sft grade`) are never seen in training.
    """
    if per_document:
        records = [x for r in records for x in split_by_document(r, k)]
    dropped: Counter = Counter()
    seen: set = set()
    by_mode: dict[str, list[dict]] = {m: [] for m in LABELS}
    for r in records:
        if not (r.get("query") or "").strip() or not r.get("documents"):
            dropped["no_query_or_documents"] += 1
            continue
        if r.get("label") not in LABELS:
            dropped["unlabelled"] += 1
            continue
        key = (str(r["question_id"]), normalize_answer(r["query"]), r["label"])
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        docs = render_documents(r["documents"], k, max_doc_words)
        if not docs:
            dropped["empty_documents"] += 1
            continue
        if (
            r["label"] == "useful"
            and contains_answer(documents_text(r["documents"]), query_answers(r))
            and not contains_answer(documents_text(docs), query_answers(r))
        ):
            dropped["answer_cut_off"] += 1
            continue
        by_mode[r["label"]].append(example(r, docs))

    rng = random.Random(seed)
    kept = {m: len(v) for m, v in by_mode.items()}
    if balance > 0 and all(by_mode.values()):
        cap = int(balance * min(len(v) for v in by_mode.values()))
        for mode, items in by_mode.items():
            if len(items) > cap:
                rng.shuffle(items)
                dropped[f"balance_{mode}"] += len(items) - cap
                del items[cap:]
    examples = [e for items in by_mode.values() for e in items]

    questions = sorted({e["question_id"] for e in examples})
    rng.shuffle(questions)
    n_val = (
        min(len(questions) - 1, max(1, round(val_fraction * len(questions))))
        if val_fraction > 0 and len(questions) > 1
        else 0
    )
    val_ids = set(questions[:n_val])
    train = [e for e in examples if e["question_id"] not in val_ids]
    val = [e for e in examples if e["question_id"] in val_ids]
    rng.shuffle(train)

    def counts(rows: list[dict]) -> dict:
        return {
            "examples": len(rows),
            "questions": len({e["question_id"] for e in rows}),
            **Counter(e["mode"] for e in rows),
        }

    stats = {
        "records": len(records),
        "kept_before_balance": kept,
        "dropped": dict(dropped),
        "train": counts(train),
        "validation": counts(val),
        "mean_completion_words": round(
            sum(len(e["completion"][0]["content"].split()) for e in examples) / max(len(examples), 1), 1
        ),
        "k": k,
        "max_doc_words": max_doc_words,
        "balance": balance,
        "per_document": per_document,
        "seed": seed,
    }
    return train, val, stats
