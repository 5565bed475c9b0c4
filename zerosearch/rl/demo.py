"""`zerosearch demo`: the whole ZeroSearch loop at toy scale, offline, on a CPU.

1. build the mini-world (a fictional world: no model can answer from memory, so any gain comes from searching);
2. evaluate the untrained policy on held-out questions with BM25 as its engine (greedy; EM/F1 with bootstrap
   CIs), and the same model in the RAG baseline (one BM25 search with the question, then answer);
3. train it with RL against the simulator and the noise curriculum (configs/tiny.yaml, fewer steps);
4. evaluate the trained policy the same way, and print the before/after table and where everything is.

At this scale (a 135M policy, a few RL steps) the point is the loop, not the gain: expect small differences whose
CIs overlap. Longer runs: `zerosearch train --config tiny --steps N`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from zerosearch.config import TrainConfig, load_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
DEFAULT_STEPS, DEFAULT_EVAL = 8, 40


def evaluate_model(spec: str, examples, cfg: TrainConfig, engine, methods=("policy",)) -> dict[str, list[dict]]:
    from zerosearch.eval import evaluate
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    model, tokenizer = load_model(spec, dtype=cfg.model.dtype)
    generator = HFGenerator(model, tokenizer)
    return {m: evaluate(m, generator, examples, engine=engine, rollout_cfg=cfg.rollout, k=cfg.engine.k) for m in methods}


def run_demo(out: Path, steps: int | None = None, n_eval: int | None = None, model: str = "smollm2-135m") -> dict:
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
    from zerosearch.rollout import read_jsonl
    from zerosearch.rollout.view import render_html

    console = Console()
    start = time.perf_counter()
    out = Path(out)
    cfg = load_config(TrainConfig, CONFIG, flags={"model.spec": model, "rl.steps": steps or DEFAULT_STEPS, "out": str(out / "run")})

    console.rule("1. mini-world")
    train_qs = load_questions(cfg.data, seed=cfg.seed)
    test_qs = load_questions(cfg.eval_data, limit=n_eval or DEFAULT_EVAL, seed=cfg.seed)
    console.print(f"{len(train_qs)} training questions; {len(test_qs)} held-out questions evaluated")

    console.rule("2. untrained policy vs BM25")
    bm25 = make_engine(dataclasses.replace(EngineConfig(), name="bm25", corpus="mini-world:corpus", k=cfg.engine.k))
    baseline = evaluate_model(model, test_qs, cfg, bm25, methods=("rag", "policy"))
    before = baseline["policy"]

    console.rule(f"3. RL ({cfg.rl.algo}, {cfg.rl.steps} steps) against the simulator, with the curriculum")
    run_dir = train(cfg, resume=bool(checkpoint.checkpoints(cfg.out)))

    console.rule("4. trained policy vs BM25")
    after = evaluate_model(str(checkpoint.checkpoints(run_dir)[-1]), test_qs, cfg, bm25)["policy"]

    records = {"rag-bm25": baseline["rag"], "untrained": before, "trained": after}
    summaries = {name: summarize(recs) for name, recs in records.items()}
    meta = {"model": model, "engine": "bm25 (mini-world corpus)", "data": f"{cfg.eval_data} ({len(test_qs)} questions)"}
    write_results(out / "eval", records, summaries, meta)
    diff = paired_difference(before, after)
    plots = plot_run(run_dir)
    last = sorted((run_dir / "trajectories").glob("*.jsonl"))[-1]
    viewer = last.with_suffix(".html")
    viewer.write_text(render_html(read_jsonl(last), title=f"training trajectories, {last.stem}"), encoding="utf-8")

    table = Table(title=f"held-out mini-world, BM25 at evaluation, greedy ({len(test_qs)} questions; 95% bootstrap CI)")
    for col in ("policy", "EM %", "F1 %", "searches/question", "answer rate"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name, summary in summaries.items():
        s = summary[AVERAGE]
        ci = lambda m: f"{100 * s[m]['mean']:.1f} [{100 * s[m]['lo']:.1f}, {100 * s[m]['hi']:.1f}]"  # noqa: E731
        table.add_row(name, ci("em"), ci("f1"), f"{s['searches_per_question']:.2f}", f"{100 * s['answer_rate']:.0f}%")
    d = diff[AVERAGE]
    table.add_row("trained - untrained", *(f"{100 * d[m]['mean']:+.1f} [{100 * d[m]['lo']:+.1f}, {100 * d[m]['hi']:+.1f}]" for m in ("em", "f1")), "", "")
    console.print(table)
    console.print(f"run (metrics.jsonl, checkpoints): {run_dir}\nplots: {plots[0].parent}\n"
                  f"trajectory viewer: {viewer}\nevaluation (table.md, results.json, per-question jsonl): {out / 'eval'}\n"
                  f"total time: {(time.perf_counter() - start) / 60:.1f} min")
    return {"summaries": summaries, "difference": diff}
