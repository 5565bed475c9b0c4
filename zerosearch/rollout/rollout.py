"""The batched multi-turn rollout (see docs/protocol.md): B trajectories advance together, turn by turn.

Each turn: generate for the active trajectories (stop strings `</search>`, `</answer>`) -> parse the action ->
one batched engine call for all the turn's searches -> append the observation (or the invalid-action message)
-> continue. The loss mask is built as pieces are appended: policy token ids with 1, environment token ids
(each piece tokenized on its own) with 0; nothing is re-tokenized or inferred afterwards.

Limits: `max_turns` turns that may search, then one answer-only turn (a search there is not sent to the
engine), as the reference counts them; `max_obs_tokens` environment tokens per trajectory and
`max_context_tokens` prompt + response tokens, both enforced by cutting the documents of an observation at a
token boundary while keeping `<information>` … `</information>` whole.

Stop reasons: `answer`; `max_turns` (turns used up); `max_tokens` (the last turn ran out of its per-turn
tokens without an action); `context_full` (no room left for the next observation or generation);
`search_error` (the engine could not answer its search after bounded retries: the trainer leaves such
trajectories out of the loss).

Departure from the reference: `<information>` is also a stop string, and a policy turn that starts writing its
own `<information>` block is cut before it (the tokens before it are kept; the turn is then parsed as usual,
usually as invalid). Observations belong to the environment only; the reference lets the policy hallucinate
them into its loss.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

from zerosearch import prompts
from zerosearch.config import RolloutConfig
from zerosearch.data.formats import QAExample
from zerosearch.engines.base import Document, EngineError, PartialResults, SearchEngine, SearchRequest
from zerosearch.generation.base import Completion, Generator, chat_prompt, encode_text
from zerosearch.rewards import score
from zerosearch.rollout.protocol import parse_action
from zerosearch.rollout.trajectory import Search, Segment, Trajectory

log = logging.getLogger(__name__)

HALLUCINATED = prompts.OBSERVATION_OPEN.strip()  # "<information>"
STOP = (*prompts.STOP_STRINGS, HALLUCINATED)


@dataclass
class _Rollout:
    """A trajectory under construction: the context the policy sees and what it costs."""

    traj: Trajectory
    context: list[int]
    logprobs: list[float] | None = field(default_factory=list)
    obs_tokens: int = 0
    done: bool = False

    def append(self, ids: list[int], text: str, role: str, logprobs: list[float] | None = None) -> None:
        t = self.traj
        t.response_ids += ids
        t.loss_mask += [1 if role == "policy" else 0] * len(ids)
        t.segments.append(Segment(role=role, text=text, n_tokens=len(ids)))
        self.context += ids
        if self.logprobs is not None:
            self.logprobs = (
                None if role == "policy" and logprobs is None else self.logprobs + (logprobs or [0.0] * len(ids))
            )
        if role == "env":
            self.obs_tokens += len(ids)

    def finish(self, reason: str, answer: str | None = None) -> None:
        self.done = True
        t = self.traj
        t.stop_reason, t.answer = reason, answer
        t.logprobs = self.logprobs

    def score(self, reward: str, format_bonus: float) -> None:
        """Score the last policy turn, which holds the answer block when there is one (documents never count)."""
        t = self.traj
        last = next((s.text for s in reversed(t.segments) if s.role == "policy"), None)
        scores = score(last, t.golden_answers, reward, format_bonus)
        t.reward, t.em = scores["reward"], scores["em"]


def _template(prompt_template: str | Callable[[str], str]) -> Callable[[str], str]:
    if callable(prompt_template):
        return prompt_template
    return lambda question: prompt_template.format(question=question)


def _cut_hallucination(tokenizer, c: Completion) -> tuple[list[int], str, list[float] | None]:
    """The completion without a policy-written `<information>` block: keep the longest token prefix before it."""
    if c.stop != HALLUCINATED:
        return c.token_ids, c.text, c.logprobs
    limit = c.text.find(HALLUCINATED)
    n = len(c.token_ids)
    while n and (
        HALLUCINATED in (text := tokenizer.decode(c.token_ids[:n], skip_special_tokens=True)) or len(text) > limit
    ):
        n -= 1
    text = tokenizer.decode(c.token_ids[:n], skip_special_tokens=True)
    return c.token_ids[:n], text, c.logprobs[:n] if c.logprobs is not None else None


class _Environment:
    """Tokenizes the environment's pieces and fits them into a trajectory's budgets."""

    def __init__(self, tokenizer, cfg: RolloutConfig):
        self.tokenizer, self.cfg = tokenizer, cfg
        self.open = self.ids(prompts.OBSERVATION_OPEN)
        self.close = self.ids(prompts.OBSERVATION_CLOSE)
        self.invalid = self.ids(prompts.INVALID_ACTION)

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def room(self, r: _Rollout) -> int:
        return min(self.cfg.max_obs_tokens - r.obs_tokens, self.cfg.max_context_tokens - len(r.context))

    def append_observation(self, r: _Rollout, docs) -> bool:
        """Append `<information>docs</information>`, the documents cut to fit; False when not even the frame fits."""
        text = prompts.format_documents(docs)
        body = self.ids(text)
        room = self.room(r) - len(self.open) - len(self.close)
        if room < 0:
            return False
        if len(body) > room:
            body = body[:room]
            while body and self.tokenizer.decode(body).endswith("\ufffd"):  # don't end inside a character
                body = body[:-1]
            text = self.tokenizer.decode(body)
        r.append(self.open + body + self.close, prompts.OBSERVATION_OPEN + text + prompts.OBSERVATION_CLOSE, "env")
        return True

    def append_invalid(self, r: _Rollout) -> bool:
        if len(self.invalid) > self.room(r):
            return False
        r.append(list(self.invalid), prompts.INVALID_ACTION, "env")
        return True


def run_rollouts(
    generator: Generator,
    engine: SearchEngine,
    examples: list[QAExample],
    cfg: RolloutConfig,
    *,
    p_noisy: float = 0.0,
    seed: int = 0,
    prompt_template: str | Callable[[str], str] = prompts.policy_prompt,
    n: int = 1,
    greedy: bool = False,
    k: int = 5,
    reward: str = "f1",
    format_bonus: float = 0.0,
) -> list[Trajectory]:
    """`n` trajectories per example (grouped consecutively), with `reward` (the training reward: `reward`'s metric
    plus the optional format bonus, see `rewards.score`) and em filled in.

    `p_noisy` is the current step's curriculum probability: each search call draws useful/noisy once from a
    RNG seeded by `seed`. `prompt_template` is a `{question}` format string or a callable; the chat template
    is applied when the tokenizer has one. `k` documents per search. A search the engine cannot answer after
    `cfg.search_retries` retries ends its trajectory with stop reason `search_error`; the others go on.
    """
    tokenizer = generator.tokenizer
    if tokenizer is None:
        raise ValueError(f"the rollout needs the generator's tokenizer to build loss masks; {generator.name} has none")
    if not 0.0 <= p_noisy <= 1.0:
        raise ValueError(f"p_noisy must be in [0, 1], got {p_noisy}")
    template = _template(prompt_template)
    env = _Environment(tokenizer, cfg)
    draws = random.Random(seed)  # the curriculum's useful/noisy draws, one per search call
    temperature = 0.0 if greedy else cfg.temperature
    rollouts = []
    for ex in examples:
        prompt_ids = encode_text(tokenizer, chat_prompt(tokenizer, template(ex.question)))
        for _ in range(n):
            traj = Trajectory(
                question=ex.question,
                golden_answers=list(ex.golden_answers),
                prompt_ids=list(prompt_ids),
                id=ex.id,
                data_source=ex.data_source,
            )
            rollouts.append(_Rollout(traj, list(prompt_ids)))

    # Where the back-end can, keep each sequence's KV cache across turns (the weights are fixed in here).
    reuse = getattr(generator, "prefix_cache", None)
    with reuse() if reuse else nullcontext():
        # `max_turns` turns that may search, then one answer-only turn (as the reference counts them).
        for turn in range(1, cfg.max_turns + 2):
            last = turn > cfg.max_turns
            active = []
            for r in rollouts:
                if not r.done and cfg.max_context_tokens - len(r.context) <= 0:
                    r.finish("context_full")
                elif not r.done:
                    active.append(r)
            if not active:
                break
            budgets = [min(cfg.max_turn_tokens, cfg.max_context_tokens - len(r.context)) for r in active]
            completions = _generate(
                generator, [r.context for r in active], budgets, cfg, temperature, seed * 1_000_003 + turn
            )
            searches = []
            for r, c, budget in zip(active, completions, budgets):
                r.traj.n_turns = turn
                ids, text, logprobs = _cut_hallucination(tokenizer, c)
                r.append(ids, text, "policy", logprobs)
                action = parse_action(text, cfg.max_query_chars)
                if action.kind == "answer":
                    r.finish("answer", action.content)
                elif c.finish_reason == "length" and budget < cfg.max_turn_tokens:
                    r.finish("context_full")
                elif last:
                    r.finish("max_tokens" if c.finish_reason == "length" else "max_turns")
                elif action.kind == "search":
                    mode = "noisy" if draws.random() < p_noisy else "useful"
                    searches.append(
                        (
                            r,
                            SearchRequest(
                                action.content,
                                k=k,
                                question=r.traj.question,
                                answers=list(r.traj.golden_answers),
                                mode=mode,
                            ),
                        )
                    )
                elif not env.append_invalid(r):
                    r.finish("context_full")
            results = _search(engine, [req for _, req in searches], cfg.search_retries)
            for (r, req), docs in zip(searches, results):
                if docs is None:
                    r.finish("search_error")
                    continue
                r.traj.searches.append(Search(query=req.query, mode=req.mode, documents=[d.to_dict() for d in docs]))
                if not env.append_observation(r, docs):
                    r.finish("context_full")
    for r in rollouts:
        if not r.done:
            r.finish("max_turns")
        r.score(reward, format_bonus)
    return [r.traj for r in rollouts]


def _search(engine: SearchEngine, requests: list[SearchRequest], retries: int) -> list[list[Document] | None]:
    """The engine's documents per request; None for a request it could not answer.

    A failed batch is retried `retries` times (only its unanswered requests, when the engine answered part of it),
    then request by request once, so that one bad request (or a short outage) costs its own trajectory only,
    never the others or the run.
    """
    results: list[list[Document] | None] = [None] * len(requests)
    todo = list(range(len(requests)))
    for attempt in range(retries + 1):
        if not todo:
            break
        try:
            found = engine.search([requests[i] for i in todo])
        except PartialResults as e:
            log.warning("search partly failed (try %d of %d): %s", attempt + 1, retries + 1, e)
            found = e.results
        except EngineError as e:
            log.warning("search failed (try %d of %d): %s", attempt + 1, retries + 1, e)
            continue
        for i, docs in zip(todo, found):
            results[i] = docs
        todo = [i for i in todo if results[i] is None]
    if len(todo) > 1:
        for i in todo:
            try:
                (results[i],) = engine.search([requests[i]])
            except EngineError as e:
                log.warning("search %r failed: %s", requests[i].query[:80], e)
    return results


def _generate(
    generator: Generator,
    contexts: list[list[int]],
    budgets: list[int],
    cfg: RolloutConfig,
    temperature: float,
    seed: int,
) -> list[Completion]:
    """One generate call per distinct token budget (rows near the context limit get fewer new tokens)."""
    completions: list[Completion | None] = [None] * len(contexts)
    for i, budget in enumerate(sorted(set(budgets), reverse=True)):
        rows = [j for j, b in enumerate(budgets) if b == budget]
        outs = generator.generate(
            [contexts[j] for j in rows],
            max_new_tokens=budget,
            stop=STOP,
            temperature=temperature,
            top_p=cfg.top_p,
            seed=seed + 7919 * i,
        )
        for j, c in zip(rows, outs):
            completions[j] = c
    return completions
