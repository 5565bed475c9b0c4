"""The evaluated methods — the paper's baselines and ours — behind one function, `evaluate`.

- direct, cot: one greedy completion of prompts.DIRECT_PROMPT / COT_PROMPT.
- rag: one search with the question itself, then one completion of prompts.RAG_PROMPT over the documents.
- agent: an instruct model never trained on the protocol, prompted with prompts.AGENT_PROMPT, through the
  multi-turn rollout machinery (the same one RL trains with).
- policy: a trained checkpoint with the policy prompt (prompts.policy_prompt), through the same machinery.

Answer extraction. Multi-turn methods take the last <answer> block, as the protocol says. Small models often
omit the tags in a single completion, so the single-shot methods (direct, cot, rag) fall back to the first
non-empty line of the completion once <think> blocks and stray tags are removed (and a leading "Answer:" is
dropped). `answered` is true only when the model closed an <answer> block: the answer rate measures protocol
compliance, while the fallback keeps the single-shot baselines from scoring zero for formatting alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from zerosearch import prompts
from zerosearch.config import RolloutConfig
from zerosearch.data.formats import QAExample
from zerosearch.engines.base import SearchEngine, SearchRequest
from zerosearch.errors import UserError
from zerosearch.generation.base import Generator, chat_prompt
from zerosearch.rewards import extract_answer, metrics

SINGLE_SHOT = ("direct", "cot", "rag")
MULTI_TURN = ("agent", "policy")
METHODS = SINGLE_SHOT + MULTI_TURN
NEEDS_ENGINE = ("rag", "agent", "policy")

# Completion budgets of the single-shot methods: a short answer, or a short chain of thought then the answer.
MAX_NEW_TOKENS = {"direct": 64, "cot": 384, "rag": 64}
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)
_TAG_RE = re.compile(r"</?\w+>")
_ANSWER_PREFIX_RE = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*[:\-]\s*", re.IGNORECASE)
# Token-level fields of a trajectory stay out of the per-question results (text, searches and answer stay).
_TOKEN_FIELDS = ("prompt_ids", "response_ids", "loss_mask", "logprobs")


def single_shot_answer(text: str) -> tuple[str | None, bool]:
    """(prediction, answered): the last <answer> block, else the first line of the completion (see module doc)."""
    tagged = extract_answer(text)
    if tagged is not None:
        return tagged, True
    for line in _THINK_RE.sub("", text).splitlines():
        line = _ANSWER_PREFIX_RE.sub("", _TAG_RE.sub("", line).strip()).strip()
        if line:
            return line, False
    return None, False


def _record(ex: QAExample, prediction: str | None, answered: bool, n_searches: int, trajectory: dict | None) -> dict:
    return {
        "id": ex.id,
        "question": ex.question,
        "golden_answers": list(ex.golden_answers),
        "data_source": ex.data_source,
        "prediction": prediction,
        **metrics(prediction, ex.golden_answers),
        "n_searches": n_searches,
        "answered": answered,
        "trajectory": trajectory,
    }


def _batches(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _single_shot(
    method: str, generator: Generator, batch: Sequence[QAExample], engine: SearchEngine | None, k: int
) -> list[dict]:
    documents: list[list] = [[] for _ in batch]
    if method == "rag":
        requests = [
            SearchRequest(query=ex.question, k=k, question=ex.question, answers=list(ex.golden_answers)) for ex in batch
        ]
        documents = engine.search(requests)
        users = [
            prompts.RAG_PROMPT.format(documents=prompts.format_documents(d), question=ex.question)
            for ex, d in zip(batch, documents)
        ]
    else:
        template = prompts.DIRECT_PROMPT if method == "direct" else prompts.COT_PROMPT
        users = [template.format(question=ex.question) for ex in batch]
    texts = [chat_prompt(generator.tokenizer, u) for u in users]
    completions = generator.generate(
        texts, max_new_tokens=MAX_NEW_TOKENS[method], stop=("</answer>",), temperature=0.0, seed=0
    )
    records = []
    for ex, docs, comp in zip(batch, documents, completions):
        prediction, answered = single_shot_answer(comp.text)
        trajectory = {"response": comp.text, "finish_reason": comp.finish_reason}
        if method == "rag":
            trajectory["documents"] = [d.to_dict() for d in docs]
        records.append(_record(ex, prediction, answered, int(method == "rag"), trajectory))
    return records


def _multi_turn(
    method: str, generator: Generator, batch: Sequence[QAExample], engine: SearchEngine, cfg: RolloutConfig, k: int
) -> list[dict]:
    from zerosearch.rollout import run_rollouts

    template: str | Callable[[str], str] = prompts.policy_prompt if method == "policy" else prompts.AGENT_PROMPT
    trajectories = run_rollouts(
        generator, engine, list(batch), cfg, p_noisy=0.0, seed=0, prompt_template=template, n=1, greedy=True, k=k
    )
    records = []
    for ex, t in zip(batch, trajectories):
        trajectory = {k: v for k, v in t.to_dict().items() if k not in _TOKEN_FIELDS}
        records.append(_record(ex, t.answer, t.answer is not None, len(t.searches), trajectory))
    return records


def evaluate(
    method: str,
    generator: Generator,
    examples: Sequence[QAExample],
    *,
    engine: SearchEngine | None = None,
    rollout_cfg: RolloutConfig | None = None,
    batch_size: int = 16,
    k: int = 5,
    on_batch: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Greedy, batched evaluation of one method: one record per question (see `_record` for the fields).

    `k` is the number of documents per search; `on_batch(records)` is called with each batch's records as soon
    as it is done (the CLI appends them to disk, so that an interrupted evaluation resumes).
    """
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method in NEEDS_ENGINE and engine is None:
        raise UserError(f"method {method!r} needs a search engine (--engine)")
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    cfg = rollout_cfg or RolloutConfig()
    records: list[dict] = []
    for batch in _batches(list(examples), batch_size):
        if method in SINGLE_SHOT:
            done = _single_shot(method, generator, batch, engine, k)
        else:
            done = _multi_turn(method, generator, batch, engine, cfg, k)
        records += done
        if on_batch:
            on_batch(done)
    return records
