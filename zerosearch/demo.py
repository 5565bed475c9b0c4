"""`zerosearch demo`: the whole ZeroSearch loop at toy scale, offline, on a CPU.

1. build the mini-world (a fictional world: no model can answer from memory, so any gain comes from searching);
2. evaluate the untrained policy on held-out questions with BM25 as its engine (greedy; EM/F1 with bootstrap
   CIs), and the same model in the RAG baseline (one BM25 search with the question, then answer);
3. warm start (optional, a departure from the paper: see rl/warmstart.py): a short SFT on oracle search
   demonstrations, because a 135M policy never issues a search on its own; evaluate it the same way;
4. train it with RL against the simulator and the noise curriculum (zerosearch/recipes/tiny.yaml, fewer steps);
5. evaluate the trained policy the same way, and print the before/after table and where everything is.

At this scale (a 135M policy, a few RL steps) the point is the loop, not the gain: expect small differences whose
CIs overlap. Longer runs: `zerosearch train --config tiny --steps N`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from zerosearch.config import TrainConfig

RECIPE = "tiny"  # zerosearch/recipes/tiny.yaml; the demo's own sizes are its section (config.DemoConfig)


def evaluate_model(spec: str, examples, cfg: TrainConfig, engine, methods=("policy",)) -> dict[str, list[dict]]:
    from zerosearch.eval import evaluate
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    model, tokenizer = load_model(spec, dtype=cfg.model.dtype)
    generator = HFGenerator(model, tokenizer)
    return {
        m: evaluate(m, generator, examples, engine=engine, rollout_cfg=cfg.rollout, k=cfg.engine.k) for m in methods
    }


def run_demo(cfg: TrainConfig) -> dict:
    """The demo of a root config: its `demo` section sizes every stage (demo.warm_steps 0 skips the warm start:
    RL from the untrained model, as in the paper)."""
    from rich.console import Console
    from rich.table import Table

    from zerosearch.config import EngineConfig
    from zerosearch.data import load_questions
    from zerosearch.engines import make_engine
    from zerosearch.eval.metrics import AVERAGE, paired_difference, summarize
    from zerosearch.eval.report import write_results
    from zerosearch.rl import checkpoint
    from zerosearch.rl.plot import plot_run
    from zerosearch.rl.trainer import train
    from zerosearch.rl.warmstart import warm_start
    from zerosearch.rollout import read_jsonl
    from zerosearch.rollout.view import render_html

    console = Console()
    start = time.perf_counter()
    demo, model = cfg.demo, cfg.model.spec
    out = Path(demo.out)
    rl = dataclasses.replace(cfg.rl, steps=demo.steps, prompts_per_step=demo.prompts_per_step)
    cfg = dataclasses.replace(cfg, rl=rl, out=str(out / "run"))

    console.rule("1. mini-world")
    train_qs = load_questions(cfg.data, seed=cfg.seed)
    test_qs = load_questions(cfg.eval_data, limit=demo.n_eval, seed=cfg.seed)
    console.print(f"{len(train_qs)} training questions; {len(test_qs)} held-out questions evaluated")

    console.rule("2. untrained policy vs BM25")
    bm25 = make_engine(dataclasses.replace(EngineConfig(), name="bm25", corpus="mini-world:corpus", k=cfg.engine.k))
    baseline = evaluate_model(model, test_qs, cfg, bm25, methods=("rag", "policy"))
    before = baseline["policy"]

    records = {"rag-bm25": baseline["rag"], "untrained": before}
    if demo.warm_steps:
        console.rule(
            f"3. warm start: SFT on {demo.warm_examples} oracle search demonstrations, {demo.warm_steps} steps"
        )
        warm_dir = out / "warm"
        if not (warm_dir / "config.json").exists():  # a rerun of the demo reuses it
            warm_start(
                model,
                warm_dir,
                n_examples=demo.warm_examples,
                steps=demo.warm_steps,
                lr=demo.warm_lr,
                batch_size=demo.warm_batch,
                k=cfg.engine.k,
                seed=cfg.seed,
                rollout_cfg=cfg.rollout,
                lora_r=cfg.rl.lora_r,
                micro_batch=cfg.rl.micro_batch,
            )
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, spec=str(warm_dir)))
        records["warm-started"] = evaluate_model(cfg.model.spec, test_qs, cfg, bm25)["policy"]

    console.rule(f"4. RL ({cfg.rl.algo}, {cfg.rl.steps} steps) against the simulator, with the curriculum")
    run_dir = train(cfg, resume=bool(checkpoint.checkpoints(cfg.out)))

    console.rule("5. trained policy vs BM25")
    after = evaluate_model(str(checkpoint.checkpoints(run_dir)[-1]), test_qs, cfg, bm25)["policy"]

    records["trained"] = after
    summaries = {name: summarize(recs) for name, recs in records.items()}
    meta = {"model": model, "engine": "bm25 (mini-world corpus)", "data": f"{cfg.eval_data} ({len(test_qs)} questions)"}
    write_results(out / "eval", records, summaries, meta)
    diffs = {
        f"trained - {name}": paired_difference(records[name], after)
        for name in ("untrained", "warm-started")
        if name in records
    }
    plots = plot_run(run_dir)
    last = sorted((run_dir / "trajectories").glob("*.jsonl"))[-1]
    viewer = last.with_suffix(".html")
    viewer.write_text(render_html(read_jsonl(last), title=f"training trajectories, {last.stem}"), encoding="utf-8")

    table = Table(title=f"held-out mini-world, BM25 at evaluation, greedy ({len(test_qs)} questions; 95% bootstrap CI)")
    for col in ("policy", "EM %", "F1 %", "searches/question", "answer rate"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name, summary in summaries.items():
        s = summary[AVERAGE]
        ci = lambda m, s=s: f"{100 * s[m]['mean']:.1f} [{100 * s[m]['lo']:.1f}, {100 * s[m]['hi']:.1f}]"  # noqa: E731
        table.add_row(name, ci("em"), ci("f1"), f"{s['searches_per_question']:.2f}", f"{100 * s['answer_rate']:.0f}%")
    for name, diff in diffs.items():
        d = diff[AVERAGE]
        table.add_row(
            name,
            *(f"{100 * d[m]['mean']:+.1f} [{100 * d[m]['lo']:+.1f}, {100 * d[m]['hi']:+.1f}]" for m in ("em", "f1")),
            "",
            "",
        )
    console.print(table)
    console.print(
        f"run (metrics.jsonl, checkpoints): {run_dir}\nplots: {plots[0].parent}\n"
        f"trajectory viewer: {viewer}\nevaluation (table.md, results.json, per-question jsonl): {out / 'eval'}\n"
        f"total time: {(time.perf_counter() - start) / 60:.1f} min"
    )
    return {"summaries": summaries, "differences": diffs}
