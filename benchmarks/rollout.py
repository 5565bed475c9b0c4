"""Multi-turn rollout wall time vs plain batched generation of the same generated and observation tokens.

Setting (deterministic, so both sides do exactly the same token work): a model with smollm2-135m's
architecture and random weights, greedy, EOS ignored. It never closes a tag, so each of the `turns` turns
makes exactly `turn-tokens` tokens and is followed by the invalid-action message (environment tokens), the
last turn excepted. The baseline is ONE batched generate call whose prompts are `prompt + all the observation
tokens` and which generates the same `turns x turn-tokens` tokens per row. Goal: rollout <= 1.15x baseline.

Then a realistic run with the real smollm2-135m weights and an in-memory engine (5 fixed documents per
search): the share of wall time spent in generation, the engine and the rollout's own bookkeeping.

    python benchmarks/rollout.py [--batch 8] [--turns 4] [--turn-tokens 64] [--part both|compare|real]
"""

from __future__ import annotations

import argparse
import time

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


class FixedEngine(SearchEngine):
    name = "fixed"

    def _search(self, requests):
        return [
            [
                Document(f"{r.query} is discussed in this passage number {i}, with some facts.", f"Title {i}")
                for i in range(r.k)
            ]
            for r in requests
        ]


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


def compare(gen: HFGenerator, batch: int, turns: int, turn_tokens: int) -> None:
    cfg = RolloutConfig(
        max_turns=turns, max_turn_tokens=turn_tokens, max_context_tokens=100_000, max_obs_tokens=100_000
    )
    run_rollouts(gen, FixedEngine(), examples(2), RolloutConfig(max_turns=2, max_turn_tokens=4), greedy=True)  # warm-up

    def rollout():
        return run_rollouts(gen, FixedEngine(), examples(batch), cfg, greedy=True)

    start = time.perf_counter()
    trajs = rollout()
    multi = time.perf_counter() - start
    assert all(sum(t.loss_mask) == turns * turn_tokens for t in trajs), "a turn stopped early: not comparable"
    obs = [[i for i, m in zip(t.response_ids, t.loss_mask) if m == 0] for t in trajs]
    plain_prompts = [t.prompt_ids + o for t, o in zip(trajs, obs)]
    start = time.perf_counter()
    gen.generate(plain_prompts, max_new_tokens=turns * turn_tokens, temperature=0)
    plain = time.perf_counter() - start

    gen.can_reuse = False
    start = time.perf_counter()
    rollout()
    no_reuse = time.perf_counter() - start
    gen.can_reuse = True
    print(
        f"batch {batch}, {turns} turns x {turn_tokens} tokens, {len(obs[0])} observation tokens per row, "
        f"prompt {len(trajs[0].prompt_ids)} tokens"
    )
    print(f"  plain batched generation        {plain:7.2f} s  1.00x")
    print(f"  multi-turn rollout (KV reuse)   {multi:7.2f} s  {multi / plain:.2f}x   (goal <= 1.15x)")
    print(f"  multi-turn rollout (no reuse)   {no_reuse:7.2f} s  {no_reuse / plain:.2f}x")


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
    ap.add_argument("--turn-tokens", type=int, default=64)
    ap.add_argument("--part", choices=("both", "compare", "real"), default="both")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'}")
    if args.part in ("both", "compare"):
        compare(random_smollm2(device), args.batch, args.turns, args.turn_tokens)
    if args.part in ("both", "real"):
        shares(args.batch, args.turns)


if __name__ == "__main__":
    main()
