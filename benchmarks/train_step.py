"""One GRPO step, ours vs TRL's GRPOTrainer, side by side on this machine's CPU.

Same model, same prompts (the policy prompt of docs/protocol.md in the chat template), same batch (P prompts x G
generations), same completion budget, sampling at temperature 1 / top-p 0.95, the same KL coefficient (0.001 by
default: both compute reference log-probs; 0: neither keeps a reference), the same trained blocks (all by default;
`--train-layers 12 --kl 0` is the tiny recipe's step), token-mean loss (TRL's `dapo`), one update per step,
accumulated on both sides over micro-batches of `--micro-batch` trajectories (1 by default, the tiny recipe's: no
padding; TRL: per_device_train_batch_size with gradient accumulation; the same gradient for any value). Single
turn, no search: our rollout runs with max_turns=0 (it stops at `</answer>`/`</search>` or EOS; TRL stops at EOS
only, so the completion lengths can differ: both are printed, with time per completion token). Both run in fp32,
with gradient checkpointing in the update (`--no-gradient-checkpointing`: neither). Ours keeps its KL reference on
disk between steps (`rl.offload_reference`; `--no-offload-reference`: in memory, as TRL's). Each side runs in its
own process (peak RSS = that process's max resident memory, model included); a warm-up step is run first, the
second step is timed. Phases: ours from the trainer's own timers, with the peak RSS of each (Linux); TRL's from its
profiling contexts (generation, `_prepare_inputs` = generation + scoring + reference log-probs, the rest =
update). Figures go to benchmarks/results/train_step.json (`--results`).

    python benchmarks/train_step.py [--model smollm2-135m] [--prompts 4] [--generations 4] [--max-tokens 64]
        [--kl 0.001] [--train-layers 0] [--micro-batch 1] [--no-gradient-checkpointing] [--no-offload-reference]
        [--results PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "train_step.json"


def peak_rss_gib() -> float:
    """The process's peak resident memory, since start or since the last `reset_peak_rss`."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 2**20
    except (OSError, IndexError):  # not Linux: the peak since start
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) starts again from the current RSS


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

    # One update over the whole batch as TRL's, accumulated over micro-batches (the same gradient: each micro-batch's
    # loss is normalized by the whole batch's token count).
    rl = RLConfig(
        micro_batch=args.micro_batch,
        algo="grpo",
        samples_per_prompt=args.generations,
        lr=1e-6,
        kl_coef=args.kl,
        loss_agg="token-mean",
        train_layers=args.train_layers,
        offload_reference=args.offload_reference,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    rollout = RolloutConfig(max_turns=0, max_turn_tokens=args.max_tokens, temperature=1.0, top_p=0.95)
    model, tokenizer = load_model(args.model, device="cpu")
    actor, reference = build_actor(model, rl)
    accelerator = Accelerator(cpu=True)
    wrapped, optimizer = accelerator.prepare(actor, make_optimizer(actor, rl))
    actor.eval()
    generator, engine = HFGenerator(actor.policy, tokenizer), NoSearch()
    examples = [QAExample(id=str(i), question=q, golden_answers=["x"]) for i, q in enumerate(questions(args.prompts))]
    rss = {"model_and_reference": peak_rss_gib()}
    for step in range(2):  # the second step is timed
        reset_peak_rss()
        start = time.perf_counter()
        trajectories = run_rollouts(generator, engine, examples, rollout, seed=step, n=args.generations, reward="f1")
        generated, rss["generation"] = time.perf_counter(), peak_rss_gib()
        reset_peak_rss()
        stats = learn(accelerator, wrapped, reference, optimizer, collate(trajectories, tokenizer.pad_token_id), rl)
        done, rss["update"] = time.perf_counter(), peak_rss_gib()
    return {
        "seconds": done - start,
        "phases_s": {
            "generation": generated - start,
            "reference_logprobs": stats["logprob_s"],
            "update": stats["update_s"],
        },
        "micro_batch": rl.micro_batch,
        "peak_rss_gib_of_phase": rss,
        "completion_len": sum(len(t.response_ids) for t in trajectories) / len(trajectories),
    }


def run_trl(args) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.extras import profiling

    from zerosearch.models import load_model
    from zerosearch.prompts import policy_prompt

    model, tokenizer = load_model(args.model, device="cpu")
    if args.train_layers:  # TRL's optimizer then holds only the trainable weights, as ours
        from zerosearch.models import freeze_below

        freeze_below(model, args.train_layers)
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
            phases.clear()
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.start)

    timer = Timer()
    phases: dict[str, float] = {}

    def record(context, seconds: float) -> None:  # TRL sends these to wandb/mlflow only: keep them here
        name = context.name.rsplit(".", 1)[-1]
        phases[name] = phases.get(name, 0.0) + seconds

    profiling.ProfilingContext._log_metrics = record
    with tempfile.TemporaryDirectory() as out:
        cfg = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=args.micro_batch,
            num_generations=args.generations,
            max_completion_length=args.max_tokens,
            temperature=1.0,
            top_p=0.95,
            beta=args.kl,
            loss_type="dapo",
            learning_rate=1e-6,
            max_steps=2,
            num_iterations=1,
            gradient_accumulation_steps=args.prompts * args.generations // args.micro_batch,
            logging_steps=1,
            report_to=[],
            use_cpu=True,
            bf16=False,  # TRL's default on CPU is bf16 autocast: fp32 as ours (bf16 matmuls fall back to slow kernels)
            gradient_checkpointing=args.gradient_checkpointing,
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
    prepare = phases.get("_prepare_inputs", 0.0)
    split = {"generation": phases.get("generate", 0.0), "update": timer.times[-1] - prepare}
    split["scoring_and_reference_logprobs"] = prepare - split["generation"]
    return {"seconds": timer.times[-1], "phases_s": split, "completion_len": lengths[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--kl", type=float, default=0.001, help="KL coefficient (0: no reference model)")
    parser.add_argument("--train-layers", type=int, default=0, help="train the top N blocks only (0: all)")
    parser.add_argument("--micro-batch", type=int, default=1, help="trajectories per forward/backward, both sides")
    parser.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="recompute activations in the backward pass, both sides",
    )
    parser.add_argument(
        "--offload-reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ours: the KL reference on disk between steps (rl.offload_reference; TRL has no such option)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.micro_batch < 1 or (args.prompts * args.generations) % args.micro_batch:
        parser.error("--micro-batch must be >= 1 and divide --prompts x --generations")
    if args.side:
        result = (run_ours if args.side == "ours" else run_trl)(args)
        result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # whole run
        print("RESULT " + json.dumps(result))
        return
    command = shlex.join(["python", "benchmarks/train_step.py", *sys.argv[1:]])
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
            "--kl",
            str(args.kl),
            "--train-layers",
            str(args.train_layers),
            "--micro-batch",
            str(args.micro_batch),
            "--gradient-checkpointing" if args.gradient_checkpointing else "--no-gradient-checkpointing",
            "--offload-reference" if args.offload_reference else "--no-offload-reference",
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
        f"<= {args.max_tokens} new tokens, KL {args.kl}, trained blocks: {args.train_layers or 'all'}, CPU, "
        f"gradient checkpointing: {args.gradient_checkpointing}, our reference offloaded: {args.offload_reference}"
    )
    print(f"{'':24}{'ours':>12}{'TRL':>12}{'ours/TRL':>10}")
    print(f"{'step time (s)':24}{ours['seconds']:12.2f}{trl['seconds']:12.2f}{ours['seconds'] / trl['seconds']:10.2f}")
    for name, side in (("ours", ours), ("TRL", trl)):
        print(f"  {name} phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in side["phases_s"].items()))
    per_tok = [r["seconds"] / max(r["completion_len"] * n, 1) * 1000 for r in (ours, trl)]
    print(f"{'ms per completion token':24}{per_tok[0]:12.2f}{per_tok[1]:12.2f}{per_tok[0] / per_tok[1]:10.2f}")
    print(f"{'mean completion tokens':24}{ours['completion_len']:12.1f}{trl['completion_len']:12.1f}")
    rss = ours["peak_rss_gib"], trl["peak_rss_gib"]
    print(f"{'peak RSS (GiB)':24}{rss[0]:12.2f}{rss[1]:12.2f}{rss[0] / rss[1]:10.2f}")
    result = {
        "machine": {"uname": " ".join(platform.uname()), "nproc": os.cpu_count(), "python": platform.python_version()},
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "goals": {"time_ratio": "<= 1.0", "ours_peak_rss_gib": "<= 3"},
        "kl": args.kl,
        "train_layers": args.train_layers,
        "gradient_checkpointing": args.gradient_checkpointing,
        "offload_reference": args.offload_reference,
        "time_ratio": ours["seconds"] / trl["seconds"],
        "ms_per_token_ratio": per_tok[0] / per_tok[1],
        "ours_peak_rss_gib": ours["peak_rss_gib"],
        "trl_peak_rss_gib": trl["peak_rss_gib"],
        "ours": ours,
        "trl": trl,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(args.results)


if __name__ == "__main__":
    main()
