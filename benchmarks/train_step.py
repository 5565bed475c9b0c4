"""One GRPO step, ours vs TRL's GRPOTrainer, side by side on this machine's CPU.

Same model, same prompts (the policy prompt of docs/protocol.md in the chat template), same batch (P prompts x G
generations), same completion budget, sampling at temperature 1 / top-p 0.95, KL coefficient 0.001 (both compute
reference log-probs), token-mean loss (TRL's `dapo`), one update per step. Single turn, no search: our rollout
runs with max_turns=0 (it stops at `</answer>`/`</search>` or EOS; TRL stops at EOS only, so the completion
lengths can differ: both are printed, with time per completion token). TRL runs without gradient checkpointing,
as ours does. Each side runs in its own process (peak RSS = that process's max resident memory, model included);
a warm-up step is run first, the second step is timed.

    python benchmarks/train_step.py [--model smollm2-135m] [--prompts 4] [--generations 4] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time


def questions(n: int) -> list[str]:
    from zerosearch.data import load_questions

    return [q.question for q in load_questions("mini-world:train", limit=n, seed=0)]


def run_ours(args) -> dict:
    from accelerate import Accelerator

    from zerosearch.config import RLConfig, RolloutConfig
    from zerosearch.data.formats import QAExample
    from zerosearch.engines.base import SearchEngine
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model
    from zerosearch.rl.policy import build_actor, collate, make_optimizer
    from zerosearch.rl.trainer import learn
    from zerosearch.rollout import run_rollouts

    class NoSearch(SearchEngine):  # single turn: the rollout never calls the engine on its last turn
        def _search(self, requests):
            raise AssertionError("no search in this benchmark")

    rl = RLConfig(
        algo="grpo",
        samples_per_prompt=args.generations,
        lr=1e-6,
        micro_batch=args.prompts * args.generations,
        kl_coef=0.001,
        loss_agg="token-mean",
    )
    rollout = RolloutConfig(max_turns=0, max_turn_tokens=args.max_tokens, temperature=1.0, top_p=0.95)
    model, tokenizer = load_model(args.model, device="cpu")
    actor, reference = build_actor(model, rl)
    accelerator = Accelerator(cpu=True)
    wrapped, optimizer = accelerator.prepare(actor, make_optimizer(actor, rl))
    actor.eval()
    generator, engine = HFGenerator(actor.policy, tokenizer), NoSearch()
    examples = [QAExample(id=str(i), question=q, golden_answers=["x"]) for i, q in enumerate(questions(args.prompts))]
    for step in range(2):  # the second step is timed
        start = time.perf_counter()
        trajectories = run_rollouts(generator, engine, examples, rollout, seed=step, n=args.generations, reward="f1")
        generated = time.perf_counter()
        stats = learn(accelerator, wrapped, reference, optimizer, collate(trajectories, tokenizer.pad_token_id), rl)
        done = time.perf_counter()
    return {
        "seconds": done - start,
        "generation_s": generated - start,
        "update_s": done - generated,
        "logprob_s": stats["logprob_s"],
        "optimizer_update_s": stats["update_s"],
        "completion_len": sum(len(t.response_ids) for t in trajectories) / len(trajectories),
    }


def run_trl(args) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from zerosearch.models import load_model
    from zerosearch.prompts import policy_prompt

    model, tokenizer = load_model(args.model, device="cpu")
    tokenizer.padding_side = "left"
    data = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": policy_prompt(q)}]} for q in questions(args.prompts)] * 4
    )
    lengths: list[float] = []

    def reward(completions, **_):
        lengths.append(sum(len(tokenizer(c[0]["content"]).input_ids) for c in completions) / len(completions))
        return [0.0 for _ in completions]

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.start = [], 0.0

        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.start)

    timer = Timer()
    with tempfile.TemporaryDirectory() as out:
        cfg = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=args.prompts * args.generations,
            num_generations=args.generations,
            max_completion_length=args.max_tokens,
            temperature=1.0,
            top_p=0.95,
            beta=0.001,
            loss_type="dapo",
            learning_rate=1e-6,
            max_steps=2,
            num_iterations=1,
            gradient_accumulation_steps=1,
            logging_steps=1,
            report_to=[],
            use_cpu=True,
            gradient_checkpointing=False,
            save_strategy="no",
            seed=0,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=cfg,
            train_dataset=data,
            processing_class=tokenizer,
            callbacks=[timer],
        )
        trainer.train()
    return {"seconds": timer.times[-1], "completion_len": lengths[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        result = (run_ours if args.side == "ours" else run_trl)(args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(result))
        return
    if args.model == "tiny-random":  # TRL loads its reference model by path: give both sides the same saved copy
        from zerosearch.models import tiny_random

        model, tokenizer = tiny_random()
        args.model = tempfile.mkdtemp(prefix="tiny-random-")
        model.save_pretrained(args.model)
        tokenizer.save_pretrained(args.model)
    results = {}
    for side in ("ours", "trl"):
        cmd = [
            sys.executable,
            __file__,
            "--side",
            side,
            "--model",
            args.model,
            "--prompts",
            str(args.prompts),
            "--generations",
            str(args.generations),
            "--max-tokens",
            str(args.max_tokens),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            sys.exit(f"{side} failed:\n{done.stderr[-3000:]}")
        results[side] = json.loads(line[-1][len("RESULT ") :])
    ours, trl = results["ours"], results["trl"]
    n = args.prompts * args.generations
    print(
        f"one GRPO step: {args.model}, {args.prompts} prompts x {args.generations} generations, "
        f"<= {args.max_tokens} new tokens, CPU"
    )
    print(f"{'':24}{'ours':>12}{'TRL':>12}{'ours/TRL':>10}")
    print(f"{'step time (s)':24}{ours['seconds']:12.2f}{trl['seconds']:12.2f}{ours['seconds'] / trl['seconds']:10.2f}")
    print(f"{'  ours: generation / update (s)':32}{ours['generation_s']:.2f} / {ours['update_s']:.2f}")
    per_tok = [r["seconds"] / max(r["completion_len"] * n, 1) * 1000 for r in (ours, trl)]
    print(f"{'ms per completion token':24}{per_tok[0]:12.2f}{per_tok[1]:12.2f}{per_tok[0] / per_tok[1]:10.2f}")
    print(f"{'mean completion tokens':24}{ours['completion_len']:12.1f}{trl['completion_len']:12.1f}")
    print(
        f"{'peak RSS (MB)':24}{ours['peak_rss_mb']:12.0f}{trl['peak_rss_mb']:12.0f}"
        f"{ours['peak_rss_mb'] / trl['peak_rss_mb']:10.2f}"
    )


if __name__ == "__main__":
    main()
