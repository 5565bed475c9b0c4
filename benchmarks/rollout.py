"""Multi-turn rollout wall time vs plain batched generation of the same generated and observation tokens.

Setting (deterministic, so both sides do exactly the same token work): a model with smollm2-135m's
architecture and random weights, greedy, EOS ignored. It never closes a tag, so each of the `turns` turns
makes exactly `turn-tokens` tokens and is followed by the invalid-action message (environment tokens), the
last turn excepted. The baseline is ONE batched generate call whose prompts are `prompt + all the observation
tokens` and which generates the same `turns x turn-tokens` tokens per row. Goal: rollout <= 1.15x baseline.

`--paper-shape` is the paper's shape instead (issue 17): every turn's `turn-tokens` decoded tokens are followed
by a search (a fixed `<search> ... </search>` written after them, as if the model had) and an observation of
`--docs` documents of `--doc-words` words, so that contexts reach 1.5-2k tokens; defaults 4 turns x 128 tokens,
5 documents of 40 words. Goals there: rollout <= 1.05x plain, KV reuse >= 1.5x faster than re-encoding. The
figures go to `benchmarks/results/rollout.json` (`--results`).

Then a realistic run with the real smollm2-135m weights and an in-memory engine (5 fixed documents per
search): the share of wall time spent in generation, the engine and the rollout's own bookkeeping.

    python benchmarks/rollout.py [--batch 8] [--turns 4] [--turn-tokens 64] [--part both|compare|real]
    python benchmarks/rollout.py --paper-shape [--batch 8] [--docs 5] [--doc-words 40] [--repeats 1] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from zerosearch.config import RolloutConfig
from zerosearch.data.formats import QAExample
from zerosearch.engines.base import Document, SearchEngine
from zerosearch.generation.hf import HFGenerator
from zerosearch.models import bundled_dir, load_model
from zerosearch.rollout import run_rollouts

QUESTIONS = [
    "Who wrote the novel that the film Blade Runner is based on",
    "What is the capital of Australia",
    "Which element has the atomic number 26",
    "In which year did the Berlin Wall fall",
    "Who painted The Starry Night",
    "What is the longest river in Africa",
    "Which planet has the most moons",
    "Who discovered penicillin",
]


RESULTS = Path(__file__).parent / "results" / "rollout.json"


class FixedEngine(SearchEngine):
    name = "fixed"

    def __init__(self, doc_words: int = 0):
        super().__init__()
        self.doc_words = doc_words  # 0: one short sentence per document

    def _search(self, requests):
        def text(query: str, i: int) -> str:
            if not self.doc_words:
                return f"{query} is discussed in this passage number {i}, with some facts."
            words = f"passage {i} about {query} records the facts of the place and the people in it".split()
            return " ".join(words[j % len(words)] for j in range(self.doc_words))

        return [[Document(text(r.query, i), f"Title {i}") for i in range(r.k)] for r in requests]


class SearchEveryTurn:
    """A generator whose every completion ends with a search: the decoded tokens, then `<search> q </search>`
    appended as if written (random weights never close a tag), so that each turn brings an observation."""

    def __init__(self, inner: HFGenerator):
        self.inner, self.tokenizer, self.name = inner, inner.tokenizer, inner.name
        self.prefix_cache = inner.prefix_cache
        self.forced_text = " <search> where is the lake observatory </search>"
        self.forced = inner.tokenizer(self.forced_text, add_special_tokens=False).input_ids

    def generate(self, prompts, **kw):
        outs = self.inner.generate(prompts, **kw)
        for c in outs:
            c.token_ids = c.token_ids + self.forced
            c.text += self.forced_text
            c.logprobs = (c.logprobs or []) + [0.0] * len(self.forced)
            c.finish_reason, c.stop = "stop", "</search>"
        return outs


class Timed:
    """Wraps a generator or an engine to add up the seconds spent in it."""

    def __init__(self, inner, method: str):
        self.inner, self.seconds = inner, 0.0
        self.tokenizer = getattr(inner, "tokenizer", None)
        self.name = getattr(inner, "name", "timed")
        if hasattr(inner, "prefix_cache"):
            self.prefix_cache = inner.prefix_cache
        setattr(self, method, self._timed(getattr(inner, method)))

    def _timed(self, fn):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return call


def examples(batch: int) -> list[QAExample]:
    return [QAExample(str(i), QUESTIONS[i % len(QUESTIONS)], ["x"]) for i in range(batch)]


def random_smollm2(device: str) -> HFGenerator:
    tok = load_model("tiny-random")[1]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(bundled_dir("smollm2-135m"))).to(device).eval()
    gen = HFGenerator(model, tok)
    gen.eos_ids = set()
    return gen


def compare(
    gen: HFGenerator, batch: int, turns: int, turn_tokens: int, docs: int = 0, doc_words: int = 0, repeats: int = 1
) -> dict:
    """Seconds of the rollout with KV reuse, without it, and of one plain generate of the same tokens: the median of
    `repeats` rounds, each timing the three in turn (a shared machine's speed drifts over minutes: interleaving puts
    the drift on all three). With `docs`, the paper's shape: a search and `docs` documents of `doc_words` words after
    every turn."""
    paper = docs > 0
    policy = SearchEveryTurn(gen) if paper else gen
    engine = FixedEngine(doc_words)
    # with searches, the last search turn's observation is followed by one answer-only turn: turns - 1 + 1
    cfg = RolloutConfig(
        max_turns=turns - 1 if paper else turns,
        max_turn_tokens=turn_tokens,
        max_context_tokens=100_000,
        max_obs_tokens=100_000,
    )
    run_rollouts(gen, FixedEngine(), examples(2), RolloutConfig(max_turns=2, max_turn_tokens=4), greedy=True)  # warm-up

    def rollout():
        return run_rollouts(policy, engine, examples(batch), cfg, greedy=True, k=docs or 5)

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    start = time.perf_counter()
    trajs = rollout()  # the first round's timing of the rollout
    first = time.perf_counter() - start
    forced_ids = policy.forced if paper else []
    forced = len(forced_ids)
    decoded = [sum(t.loss_mask) - forced * t.n_turns for t in trajs]  # every turn ends with the forced search
    assert all(d == turns * turn_tokens for d in decoded), f"a turn stopped early: not comparable ({decoded})"
    # the plain baseline's prompt: everything the rollout did not decode (observations and the forced searches)
    obs = [[i for i, m in zip(t.response_ids, t.loss_mask) if m == 0] for t in trajs]
    plain_prompts = [t.prompt_ids + o + forced_ids * t.n_turns for t, o in zip(trajs, obs)]

    def no_reuse_rollout():
        gen.can_reuse = False
        try:
            rollout()
        finally:
            gen.can_reuse = True

    rounds = [
        (
            timed(rollout) if r else first,
            timed(lambda: gen.generate(plain_prompts, max_new_tokens=turns * turn_tokens, temperature=0)),
            timed(no_reuse_rollout),
        )
        for r in range(repeats)
    ]
    multi, plain, no_reuse = (statistics.median(r[i] for r in rounds) for i in range(3))
    context = max(len(t.prompt_ids) + len(t.response_ids) for t in trajs)
    print(
        f"batch {batch}, {turns} turns x {turn_tokens} tokens, {len(obs[0])} environment tokens per row, "
        f"prompt {len(trajs[0].prompt_ids)} tokens, final context {context} tokens"
    )
    goal = 1.05 if paper else 1.15
    print(f"  plain batched generation        {plain:7.2f} s  1.00x")
    print(f"  multi-turn rollout (KV reuse)   {multi:7.2f} s  {multi / plain:.2f}x   (goal <= {goal}x)")
    print(f"  multi-turn rollout (no reuse)   {no_reuse:7.2f} s  {no_reuse / plain:.2f}x")
    print(f"  KV reuse speed-up over re-encoding: {no_reuse / multi:.2f}x" + ("   (goal >= 1.5x)" if paper else ""))
    return {
        "batch": batch,
        "turns": turns,
        "turn_tokens": turn_tokens,
        "docs": docs,
        "doc_words": doc_words,
        "environment_tokens_per_row": len(obs[0]),
        "prompt_tokens": len(trajs[0].prompt_ids),
        "final_context_tokens": context,
        "plain_s": round(plain, 2),
        "rollout_s": round(multi, 2),
        "rollout_no_reuse_s": round(no_reuse, 2),
        "repeats": repeats,
        "rounds_s": [[round(x, 2) for x in r] for r in rounds],  # (rollout, plain, no reuse) per round
        "rollout_over_plain": round(multi / plain, 3),
        "reuse_speedup": round(no_reuse / multi, 3),
    }


def shares(batch: int, turns: int) -> None:
    model, tok = load_model("smollm2-135m")
    gen = Timed(HFGenerator(model, tok), "generate")
    engine = Timed(FixedEngine(), "search")
    cfg = RolloutConfig(max_turns=turns, max_turn_tokens=128, temperature=1.0)
    start = time.perf_counter()
    trajs = run_rollouts(gen, engine, examples(batch), cfg, seed=0)
    total = time.perf_counter() - start
    other = total - gen.seconds - engine.seconds
    n_search = sum(len(t.searches) for t in trajs)
    n_policy = sum(sum(t.loss_mask) for t in trajs)
    print(
        f"real smollm2-135m, batch {batch}, up to {turns} turns: {total:.2f} s, {n_policy} policy tokens, "
        f"{n_search} searches, stop reasons {sorted(t.stop_reason for t in trajs)}"
    )
    print(
        f"  generation {gen.seconds / total:6.1%}   engine {engine.seconds / total:6.1%}   "
        f"bookkeeping {other / total:6.1%}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--turn-tokens", type=int, default=None, help="64; 128 with --paper-shape")
    ap.add_argument("--part", choices=("both", "compare", "real"), default="both")
    ap.add_argument("--paper-shape", action="store_true", help="a search and its documents after every turn")
    ap.add_argument("--docs", type=int, default=5, help="documents per observation (--paper-shape)")
    ap.add_argument("--doc-words", type=int, default=40, help="words per document (--paper-shape)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where --paper-shape writes its figures")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of the three timings (medians are reported)")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    where = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {where}")
    if args.paper_shape:
        figures = compare(
            random_smollm2(device),
            args.batch,
            args.turns,
            args.turn_tokens or 128,
            args.docs,
            args.doc_words,
            args.repeats,
        )
        result = {
            "machine": {"uname": " ".join(platform.uname()), "nproc": os.cpu_count(), "device": where},
            "command": "python benchmarks/rollout.py --paper-shape "
            + f"--batch {args.batch} --turns {args.turns} --turn-tokens {figures['turn_tokens']} "
            + f"--docs {args.docs} --doc-words {args.doc_words} --repeats {args.repeats}",
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "goals": {"rollout_over_plain": "<= 1.05", "reuse_speedup": ">= 1.5"},
            **figures,
        }
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(result, indent=2) + "\n")
        print(args.results)
        return
    if args.part in ("both", "compare"):
        compare(random_smollm2(device), args.batch, args.turns, args.turn_tokens or 64, repeats=args.repeats)
    if args.part in ("both", "real"):
        shares(args.batch, args.turns)


if __name__ == "__main__":
    main()
