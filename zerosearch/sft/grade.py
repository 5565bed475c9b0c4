"""The simulator report card (see docs/evaluation.md): compare simulators on held-out queries, side by side.

Held-out items are `sft build`'s validation split (questions never trained on), each with the real engine's
documents for its query. Every simulator answers every query twice, once `useful` and once `noisy`, greedy by
default; grade a simulator with the decoding that training will use (`temperature`, `top_p`, seeded).

- useful answer-hit: a normalized gold answer occurs in the useful output (higher is better), over the queries
  that ask for it (the question, or the last hop of a two-hop one) and whose real documents hold it. The first
  hop of a two-hop question ("in which country is X?" for "what is the currency of the country of X?") asks for
  a bridge entity that a held-out question's simulator cannot know, and has no useful document that holds the
  final answer: a simulator that writes it there copies it from its prompt;
- noisy answer-leak: it occurs in the noisy output (lower is better), over every graded query;
  both leave out the queries that contain the answer themselves (e.g. "which came first, A or B?" or a club
  named after its city): there, any on-topic document "leaks" it, so they would measure nothing;
- useful shortcut: over the first hops (graded queries that ask for a bridge entity and whose real documents do
  not hold the final answer), the useful output holds the final answer anyway (lower is better): RL against such
  a simulator learns to stop after the first search, which a real engine does not reward;
- format validity: the output parses into k well-formed documents (`parse_documents`);
- prompt copy: the output (useful and noisy alike) repeats 8+ consecutive words of the exact prompt the simulator
  was given for that request (instructions, few-shot example, the question/answer preamble), other than words of
  the query itself, which a real document may well repeat (lower is better). A copied preamble holds the gold
  answer, so without this rate the answer-hit could be earned by leaking the prompt;
- distinct-2: distinct word bigrams / all bigrams over the outputs;
- overlap: token F1 between the useful output and the real engine's documents for the same query;
- tokens/s and seconds per query, from the engine's meter (batched calls; the batch size is reported).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from zerosearch.errors import UserError
from zerosearch.rewards import contains_answer, f1_score
from zerosearch.sft.judge import asks_final, documents_text, query_answers

PROMPTS = ("sft", "fewshot")
COPY_WORDS = 8  # a span this long shared with the prompt is copied, not written


def parse_spec(spec: str) -> tuple[str, str]:
    """`MODEL[:PROMPT]` → (model, prompt). Default prompt: fewshot for bundled aliases, sft for a trained model
    (a directory, or `mini-world:simulator[-base]`)."""
    from zerosearch.models import BUILT, BUNDLED, TINY

    if spec in BUILT:
        return spec, "sft"
    model, sep, prompt = spec.rpartition(":")
    if not sep:
        return spec, "fewshot" if spec in (*BUNDLED, TINY) else "sft"
    if prompt not in PROMPTS or not model:
        raise UserError(f"--simulator {spec!r}: expected MODEL[:PROMPT] with PROMPT one of {list(PROMPTS)}")
    return model, prompt


def load_items(path: str | Path, limit: int | None = None) -> list[dict]:
    """Held-out items: a `validation.jsonl` from `sft build` (or the directory holding it), one item per query."""
    path = Path(path)
    if path.is_dir():
        path = path / "validation.jsonl"
    if not path.is_file():
        raise UserError(f"held-out file not found: {path} (run `zerosearch sft build` first)")
    items, seen = [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            item = {
                "question": row["question"],
                "golden_answers": row["golden_answers"],
                "query": row["query"],
                "query_answers": query_answers(row),
                "real": row["completion"][-1]["content"],
            }
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
            raise UserError(f"{path}:{lineno}: not an `sft build` example ({type(e).__name__}: {e})") from None
        if (item["question"], item["query"]) not in seen:
            seen.add((item["question"], item["query"]))
            items.append(item)
    return items[:limit] if limit else items


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def copies_prompt(output: str, prompt: str, query: str = "", n: int = COPY_WORDS) -> bool:
    """Whether `output` repeats `n` consecutive words of `prompt` (case and punctuation aside) that are not all
    words of `query`."""
    return bool((_ngrams(output, n) & _ngrams(prompt, n)) - _ngrams(query, n))


def distinct_n(texts: list[str], n: int = 2) -> float:
    grams = [tuple(words[i : i + n]) for t in texts for words in [t.lower().split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def grade(
    generator,
    prompt: str,
    items: list[dict],
    *,
    k: int = 5,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    ban_answers: bool = False,
) -> dict:
    """The report card of one simulator (a Generator + prompt form) on the held-out items; `ban_answers` as the
    engine's (a back-end without bans grades without them: the card says which)."""
    from zerosearch.engines.base import SearchRequest
    from zerosearch.engines.simulator import SimulatorEngine, parse_documents

    engine = SimulatorEngine(
        generator,
        prompt=prompt,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        ban_answers=ban_answers,
    )
    requests = [
        SearchRequest(query=it["query"], k=k, question=it["question"], answers=list(it["golden_answers"]), mode=mode)
        for mode in ("useful", "noisy")
        for it in items
    ]
    results = []
    for start in range(0, len(requests), batch_size):
        results += engine.search(requests[start : start + batch_size])
    n = len(items)
    useful, noisy = results[:n], results[n:]

    def text(docs) -> str:
        return documents_text([d.to_dict() for d in docs])

    # parse_documents pads a short output with empty placeholders after the well-formed documents.
    valid = [sum(bool(d.text) for d in docs) == k for docs in results]
    copied = [copies_prompt(text(docs), engine.render(r), r.query) for r, docs in zip(requests, results)]
    real = [" ".join(d.text for d in parse_documents(it["real"], k)[0]) for it in items]
    meter = engine.meter
    graded = [i for i, it in enumerate(items) if not contains_answer(it["query"], it["golden_answers"])]
    answerable = {
        i for i in graded if asks_final(items[i]) and contains_answer(items[i]["real"], items[i]["golden_answers"])
    }
    first_hops = [
        i
        for i in graded
        if not asks_final(items[i]) and not contains_answer(items[i]["real"], items[i]["golden_answers"])
    ]
    useful_holds = {i: contains_answer(text(useful[i]), items[i]["golden_answers"]) for i in graded}
    return {
        "prompt": prompt,
        "k": k,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "answers_banned_in_noisy": engine.ban_answers,
        "queries": n,
        "queries_containing_answer": n - len(graded),
        "queries_answerable": len(answerable),
        "useful_answer_hit": _mean(useful_holds[i] for i in answerable),
        "queries_first_hop": len(first_hops),
        "useful_shortcut": _mean(useful_holds[i] for i in first_hops),
        "noisy_answer_leak": _mean(contains_answer(text(noisy[i]), items[i]["golden_answers"]) for i in graded),
        "format_validity": _mean(valid),
        "prompt_copy": _mean(copied),
        "distinct_2": distinct_n([text(d) for d in results]),
        "overlap_f1": _mean(f1_score(text(d), [r]) for d, r in zip(useful, real)),
        "tokens_per_s": meter.completion_tokens / meter.seconds if meter.seconds else 0.0,
        "seconds_per_query": meter.seconds / meter.queries if meter.queries else 0.0,
        "completion_tokens_per_query": meter.completion_tokens / meter.queries if meter.queries else 0.0,
        "batch_size": batch_size,
        "outputs": [  # every output, so that a metric can be recomputed or inspected
            {
                "query": it["query"],
                "answers": it["golden_answers"],
                "useful": [d.text for d in u],
                "noisy": [d.text for d in z],
                "copies_prompt": {"useful": cu, "noisy": cz},
            }
            for it, u, z, cu, cz in zip(items, useful, noisy, copied[:n], copied[n:])
        ],
    }


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else 0.0


COLUMNS = (
    ("useful_answer_hit", "useful hit ↑", "{:.3f}"),
    ("noisy_answer_leak", "noisy leak ↓", "{:.3f}"),
    ("format_validity", "format ✓ ↑", "{:.3f}"),
    ("prompt_copy", "prompt copy ↓", "{:.3f}"),
    ("distinct_2", "distinct-2", "{:.3f}"),
    ("overlap_f1", "overlap F1", "{:.3f}"),
    ("tokens_per_s", "tok/s", "{:.1f}"),
    ("seconds_per_query", "s/query", "{:.2f}"),
)


def decoding(card: dict) -> str:
    if not card.get("temperature"):
        return "greedy"
    return f"sampled at temperature {card['temperature']}, top-p {card['top_p']}"


def markdown(report: dict[str, dict]) -> str:
    lines = [
        "| simulator | prompt | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for name, card in report.items():
        lines.append(
            f"| {name} | {card['prompt']} | " + " | ".join(fmt.format(card[key]) for key, _, fmt in COLUMNS) + " |"
        )
    card = next(iter(report.values()))
    lines.append(
        f"\n{card['queries']} held-out queries, each asked once useful and once noisy ({decoding(card)}); leak over "
        f"the {card['queries'] - card['queries_containing_answer']} whose query does not itself contain the answer, "
        f"hit over the {card.get('queries_answerable', '?')} of them whose real documents hold it."
    )
    return "\n".join(lines)
