"""Does RL against the simulator teach the policy to search, and as well as RL against the real engine? (issue 12)

The recipe end to end (docs/learning.md), with the demo's stages (zerosearch/demo.py):
  a. warm start from the recipe's model (the warmstart section);
  b. evaluate it greedy with BM25 over the mini-world corpus on the first N_TEST questions of the eval data:
     the trained protocol (`policy`) and one BM25 search then answer (`rag`);
  c. RL from the warm start against the recipe's engine (the simulator) with its curriculum -> OUT/sim;
  d. the same RL, same budget, against BM25 itself (no noise mode: the curriculum's p_end is 0) -> OUT/bm25
     (not with --sim-only);
  e. evaluate both trained policies on the N_TEST questions;
  f. held-out EM every CURVE_EVERY steps of each run, on the first CURVE_N of those questions (a checkpoint is kept
     every CURVE_EVERY steps; step 0 and the last step reuse b and e);
  g. paired bootstrap differences, RESULTS (learning.json: machine, command, seconds per stage, EM/F1 with 95% CIs,
     EM per question type, per-step training metrics, per CURVE_EVERY steps the reward of trajectories by their
     number of searches and what the engine's useful documents held for multi-hop questions (the first hop's answer,
     the final one), the curve), a plot beside it, and a markdown table on stdout.

Rerunning the same command after a crash continues: a stage whose output exists is skipped, training resumes from
its last checkpoint (at most CURVE_EVERY - 1 steps are redone), evaluations resume question by question.

    python benchmarks/learning.py [--out runs/learning] [--steps 40] [--prompts-per-step 4] [--samples 4]
        [--n-test 200] [--curve-every 10] [--curve-n 50] [--parallel | --sim-only] [--config tiny]
        [--set KEY=VALUE ...] [--results PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from zerosearch.errors import UserError
from zerosearch.rewards import contains_answer

RESULTS = Path(__file__).parent / "results" / "learning.json"
PER_STEP = (
    *("reward", "frac_reward_zero_std", "entropy", "p_noisy"),
    *("step_s", "generation_s", "engine_s", "logprob_s", "update_s"),
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/learning", help="working directory: models, runs, evaluations")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the result json (the plot goes beside it)")
    parser.add_argument("--steps", type=int, default=40, help="RL steps of each run (= rl.steps)")
    parser.add_argument("--prompts-per-step", type=int, default=4, help="questions per step (= rl.prompts_per_step)")
    parser.add_argument("--samples", type=int, default=4, help="trajectories per question (= rl.samples_per_prompt)")
    parser.add_argument("--n-test", type=int, default=200, help="held-out questions of the final evaluations")
    parser.add_argument("--curve-every", type=int, default=10, help="steps between two points of the EM curve")
    parser.add_argument("--curve-n", type=int, default=50, help="held-out questions per point of the EM curve")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="train the BM25 run beside the simulator run, in a process of its own at the lowest CPU priority: it "
        "takes the cycles that the simulator run leaves (a CPU step has single-threaded stretches)",
    )
    parser.add_argument(
        "--sim-only",
        action="store_true",
        help="no run against BM25 (half the time): the result has no bm25-trained policy and no sim_minus_bm25",
    )
    parser.add_argument("--config", default="tiny", help="recipe: a shipped name or a YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    args = parser.parse_args(argv)
    for name in ("steps", "prompts_per_step", "samples", "n_test", "curve_every", "curve_n"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.parallel and args.sim_only:
        parser.error("--parallel runs the BM25 run beside the simulator run: there is none with --sim-only")
    if args.curve_n > args.n_test:
        parser.error("--curve-n must be <= --n-test (the curve's questions are the first of the test questions)")
    return args


class Stages:
    """Seconds spent per stage, summed over the reruns that resume it (OUT/seconds.json): a skipped stage adds
    nothing worth counting, an interrupted one what it had done."""

    def __init__(self, out: Path):
        self.path = out / "seconds.json"
        self.seconds = json.loads(self.path.read_text()) if self.path.exists() else {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 1)
            self.path.write_text(json.dumps(self.seconds, indent=2) + "\n")


def step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[-1])


def per_step(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{"step": m["step"], **{k: m.get(k) for k in PER_STEP}} for m in map(json.loads, lines)]


def trajectories_by_window(run_dir: Path, window: int):
    """(first step of its window of `window` steps, trajectory) for each trajectory the run logged, in step order."""
    for path in sorted((run_dir / "trajectories").glob("step-*.jsonl")):
        first = (step_of(path.with_suffix("")) - 1) // window * window + 1
        for row in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
            yield first, row


def reward_by_searches(run_dir: Path, window: int) -> list[dict]:
    """Per window of `window` steps: the share of the run's trajectories that searched n times, and their mean
    reward. What the engine pays for one more search: against BM25 a second search paid from the first steps, while
    the simulator's useful documents often answered a two-hop question after one (docs/learning.md)."""
    windows: dict[int, dict[int, list[float]]] = {}
    for first, row in trajectories_by_window(run_dir, window):
        windows.setdefault(first, {}).setdefault(len(row["searches"]), []).append(row["reward"])
    out = []
    for first, by_n in sorted(windows.items()):
        total = sum(len(rewards) for rewards in by_n.values())
        searches = {str(n): {"share": len(r) / total, "reward": sum(r) / len(r)} for n, r in sorted(by_n.items())}
        out.append({"steps": [first, first + window - 1], "searches": searches})
    return out


def engine_knowledge(run_dir: Path, hops_by_id: dict[str, list[dict]], window: int) -> list[dict]:
    """Per window of `window` steps, over the useful-mode searches of the run's multi-hop questions: the share whose
    documents name the first hop's answer (the bridge entity that the second search needs) and the share that hold
    the final answer. BM25 finds the bridge; a simulator that does not know the world cannot, and pays only for the
    final answer written into the documents of any search (docs/learning.md)."""
    windows: dict[int, list[tuple[bool, bool]]] = {}
    for first, row in trajectories_by_window(run_dir, window):
        hops = hops_by_id.get(row["id"], [])
        if len(hops) < 2:
            continue
        for search in row["searches"]:
            if search.get("mode", "useful") != "useful":
                continue
            text = " ".join(d["text"] for d in search["documents"])
            hits = (contains_answer(text, [hops[0]["answer"]]), contains_answer(text, row["golden_answers"]))
            windows.setdefault(first, []).append(hits)
    return [
        {
            "steps": [first, first + window - 1],
            "searches": len(hits),
            "first_hop_answer": sum(bridge for bridge, _ in hits) / len(hits),
            "final_answer": sum(final for _, final in hits) / len(hits),
        }
        for first, hits in sorted(windows.items())
    ]


def em_by_type(records: list[dict], type_by_id: dict[str, str]) -> dict[str, dict]:
    """{question type: {n, em}}: where a policy gains and where it loses (the mini-world's questions carry a type)."""
    by_type: dict[str, list[float]] = {}
    for r in records:
        by_type.setdefault(type_by_id.get(r["id"], "untyped"), []).append(r["em"])
    return {t: {"n": len(ems), "em": sum(ems) / len(ems)} for t, ems in sorted(by_type.items())}


def machine() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    uname = " ".join(platform.uname())
    return {"uname": uname, "nproc": os.cpu_count(), "python": platform.python_version(), "gpu": gpu}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for run, label in (("sim", "against the simulator"), ("bm25", "against BM25")):
        if run not in result["per_step"]:
            continue
        rows = result["per_step"][run]
        left.plot([r["step"] for r in rows], [r["reward"] for r in rows], marker=".", label=label)
        curve = result["curve"][run]
        right.plot([p["step"] for p in curve], [100 * p["em"] for p in curve], marker="o", label=label)
    left.set(xlabel="RL step", ylabel="mean training reward (F1)", title="training reward")
    right.set(xlabel="RL step", ylabel="EM %", title=f"held-out EM, {result['curve_n']} questions, BM25 at evaluation")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    from zerosearch.data import load_questions
    from zerosearch.demo import (
        bm25_engine,
        engine_label,
        evaluate_model,
        results_markdown,
        simulator_report,
        train_stage,
        warm_start_stage,
    )
    from zerosearch.eval.metrics import AVERAGE, paired_difference, summarize
    from zerosearch.options import load
    from zerosearch.rl import checkpoint

    flags = {"rl.steps": args.steps, "rl.prompts_per_step": args.prompts_per_step}
    # A checkpoint every curve_every steps, all kept: the curve evaluates them after training.
    flags |= {"rl.samples_per_prompt": args.samples, "save_every": args.curve_every}
    # A measurement: the collapse guard would stop (or roll back) the run it measures; reward and entropy per step
    # are in the result instead. First, so that a --set can turn it back on.
    sets = ["on_collapse=off", *args.set]
    cfg = load(args.config, sets, flags | {"keep_checkpoints": args.steps // args.curve_every + 1})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stage = Stages(out)
    test_qs = load_questions(cfg.eval_data)[: args.n_test]
    bm25 = bm25_engine(cfg)

    with stage("a. warm start"):
        warm = str(warm_start_stage(cfg, out / "warm"))
    with stage("b. evaluate the warm start"):
        before = evaluate_model(warm, test_qs, cfg, bm25, ("rag", "policy"), out=out / "eval" / "warm")
    sim_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, spec=warm), out=str(out / "sim"))
    bm25_cfg = dataclasses.replace(
        sim_cfg,
        engine=dataclasses.replace(cfg.engine, name="bm25", corpus="mini-world:corpus"),
        curriculum=dataclasses.replace(cfg.curriculum, p_start=0.0, p_end=0.0),  # a real engine has no noisy mode
        out=str(out / "bm25"),
    )
    runs = {"sim": sim_cfg} if args.sim_only else {"sim": sim_cfg, "bm25": bm25_cfg}
    simulator_report(sim_cfg, out / "simulator")
    if args.parallel:
        with stage("c+d. RL against the simulator and against BM25, in parallel"):
            background = multiprocessing.get_context("spawn").Process(target=train_stage, args=(bm25_cfg, 19))
            background.start()
            try:
                train_stage(sim_cfg)
                background.join()
            finally:  # a failed or interrupted foreground run does not leave the other one running for hours
                if background.is_alive():
                    background.terminate()
                    background.join()
            if background.exitcode:
                raise UserError(f"the run against BM25 failed (exit code {background.exitcode}): rerun to resume it")
    else:
        with stage("c. RL against the simulator"):
            train_stage(sim_cfg)
        if "bm25" in runs:
            with stage("d. RL against BM25"):
                train_stage(bm25_cfg)
    after = {}
    with stage("e. evaluate the trained policies"):
        for name, run_cfg in runs.items():
            last = str(checkpoint.checkpoints(run_cfg.out)[-1])
            after[name] = evaluate_model(last, test_qs, cfg, bm25, out=out / "eval" / name)["policy"]
    curve = {}
    with stage("f. held-out EM curve"):
        for name, run_cfg in runs.items():
            points = {0: before["policy"][: args.curve_n], args.steps: after[name][: args.curve_n]}
            for ckpt in checkpoint.checkpoints(run_cfg.out):
                if step_of(ckpt) not in points:
                    where = out / "curve" / name / ckpt.name
                    points[step_of(ckpt)] = evaluate_model(str(ckpt), test_qs[: args.curve_n], cfg, bm25, out=where)[
                        "policy"
                    ]
            curve[name] = [{"step": s, "em": summarize(points[s])[AVERAGE]["em"]["mean"]} for s in sorted(points)]

    records = {"rag-bm25": before["rag"], "warm-started": before["policy"]}
    records |= {f"{name}-trained": recs for name, recs in after.items()}
    summaries = {name: summarize(recs) for name, recs in records.items()}
    diffs = {  # B - A of paired_difference(A, B)
        "trained_minus_warm": paired_difference(records["warm-started"], after["sim"]),
        "trained_minus_rag": paired_difference(records["rag-bm25"], after["sim"]),
    }
    if "bm25" in after:
        diffs["bm25_trained_minus_warm"] = paired_difference(records["warm-started"], after["bm25"])
        diffs["sim_minus_bm25"] = paired_difference(after["bm25"], after["sim"])
    type_by_id = {q.id: q.meta["type"] for q in test_qs if "type" in q.meta}
    hops_by_id = {q.id: q.meta.get("hops", []) for q in load_questions(cfg.data)}
    metrics = ("em", "f1")
    result = {
        "machine": machine(),
        "command": shlex.join(["python", "benchmarks/learning.py", *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": stage.seconds,
        "model": cfg.model.spec,
        "simulator": engine_label(sim_cfg),
        "steps": args.steps,
        "prompts_per_step": args.prompts_per_step,
        "samples_per_prompt": args.samples,
        "n_test": len(test_qs),
        "curve_n": args.curve_n,
        "evaluation": f"greedy, bm25 over mini-world:corpus, k={cfg.engine.k}, the first questions of {cfg.eval_data}",
        **{m: {name: summary[AVERAGE][m] for name, summary in summaries.items()} for m in metrics},
        **{name: {m: diff[AVERAGE][m] for m in metrics} for name, diff in diffs.items()},
        "em_by_type": {name: em_by_type(recs, type_by_id) for name, recs in records.items()},
        "per_step": {name: per_step(Path(run_cfg.out)) for name, run_cfg in runs.items()},
        "reward_by_searches": {
            name: reward_by_searches(Path(run_cfg.out), args.curve_every) for name, run_cfg in runs.items()
        },
        "engine_knowledge": {
            name: engine_knowledge(Path(run_cfg.out), hops_by_id, args.curve_every) for name, run_cfg in runs.items()
        },
        "curve": curve,
    }
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, path.with_suffix(".png"))
    labels = {"trained_minus_warm": "sim-trained - warm-started", "sim_minus_bm25": "sim-trained - bm25-trained"}
    labels |= {"bm25_trained_minus_warm": "bm25-trained - warm-started", "trained_minus_rag": "sim-trained - rag-bm25"}
    print(
        f"\n{args.steps} GRPO steps of {args.prompts_per_step} x {args.samples} trajectories from the warm start; "
        f"{len(test_qs)} held-out questions, greedy, BM25 at evaluation (95% bootstrap CI)\n\n"
        + results_markdown(summaries, {labels[k]: d for k, d in diffs.items()})
        + "\nEM by question type: "
        + "; ".join(
            f"{name} " + ", ".join(f"{t} {100 * v['em']:.1f}" for t, v in by_type.items())
            for name, by_type in result["em_by_type"].items()
        )
        + f"\n{path} and {path.with_suffix('.png')}"
    )
    return result


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(parse(argv), argv)
    except UserError as e:  # a user's mistake: one line, not a traceback
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
