"""`zerosearch demo`: the whole ZeroSearch loop at toy scale, offline, on a CPU (see docs/learning.md).

1. build the mini-world (a fictional world: no model can answer from memory, so any gain comes from searching);
2. the simulator RL trains against, and its report card (the built `mini-world:simulator` is built on first use);
3. evaluate the untrained policy on held-out questions with BM25 as its engine (greedy; EM/F1 with bootstrap CIs);
4. warm start (the warmstart section; a departure from the paper, see rl/warmstart.py): a short SFT on oracle search
   demonstrations, because a 135M policy never issues a search on its own; evaluate it the same way, and the same
   model in the RAG baseline (one BM25 search with the question, then answer);
5. train it with RL against the simulator and the noise curriculum (zerosearch/recipes/tiny.yaml, fewer steps);
6. evaluate the trained policy the same way, and print the before/after table and where everything is.

A few RL steps on a few dozen questions show the loop working, not a significant gain: that is
benchmarks/learning.py's run, whose stages are this file's functions. Each stage starts by handing what the
previous ones freed back to the OS (zerosearch/memory.py): otherwise their peaks add up in one process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

from zerosearch.config import TrainConfig
from zerosearch.errors import UserError
from zerosearch.memory import release_freed_memory

RECIPE = "tiny"  # zerosearch/recipes/tiny.yaml; the demo's own sizes are its section (config.DemoConfig)
# the statistically meaningful run, by benchmarks/learning.py with its defaults
LEARNING_RESULTS = "benchmarks/results/learning.json (40 GRPO steps of 4 x 4 trajectories, 200 questions)"


def say(message: str) -> None:
    """One plain line per unit of progress: readable in a terminal and in a log file alike."""
    print(message, flush=True)


def bm25_engine(cfg: TrainConfig):
    """The evaluation engine: BM25 over the mini-world corpus (never the simulator: it is given the answers)."""
    from zerosearch.config import EngineConfig
    from zerosearch.engines import make_engine

    return make_engine(EngineConfig(name="bm25", corpus="mini-world:corpus", k=cfg.engine.k))


def warm_start_stage(cfg: TrainConfig, out: str | Path) -> Path:
    """The warm start of cfg.model.spec configured by cfg.warmstart, into `out`; a rerun reuses a finished one (the
    save is atomic), and refuses one made with other settings rather than mixing them."""
    from zerosearch.rl.warmstart import warm_start_from

    w, out = cfg.warmstart, Path(out)
    release_freed_memory()
    if (out / "config.json").exists():
        made = json.loads((out / "warmstart.json").read_text())
        wanted = {"model": cfg.model.spec, "steps": w.steps, "lr": w.lr, "batch_size": w.batch_size}
        differ = [f"{k} {made.get(k)!r} (now {v!r})" for k, v in wanted.items() if made.get(k) != v]
        if differ:
            raise UserError(f"{out} holds a warm start with {', '.join(differ)}: delete it or choose another out")
        say(f"warm start: reusing {out}")
        return out
    say(f"warm start: SFT of {cfg.model.spec} on {w.examples} oracle search demonstrations, {w.steps} steps")
    return warm_start_from(cfg, out, log=say)


def evaluate_model(
    spec: str, examples, cfg: TrainConfig, engine, methods=("policy",), out: str | Path | None = None
) -> dict[str, list[dict]]:
    """{method: records} of model `spec` on `examples`, greedy, a progress line per batch. With `out`, each batch's
    records are appended to OUT/results.jsonl as it finishes and a rerun evaluates only the questions missing there
    (so `out` belongs to one model: give each model its own)."""
    from zerosearch.eval import evaluate
    from zerosearch.eval.report import append_records, read_records, record_key
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    def key(ex) -> tuple[str, str]:
        return record_key({"data_source": ex.data_source, "id": ex.id})

    release_freed_memory()
    done = {m: {record_key(r): r for r in rs} for m, rs in read_records(out).items()} if out else {}
    todo = {m: [ex for ex in examples if key(ex) not in done.get(m, {})] for m in methods}
    generator = HFGenerator(*load_model(spec, dtype=cfg.model.dtype)) if any(todo.values()) else None
    for m in methods:
        count, start = [len(examples) - len(todo[m])], time.perf_counter()

        def on_batch(batch, m=m, count=count, start=start):
            if out:
                append_records(out, m, batch)
            count[0] += len(batch)
            say(f"eval {m} of {spec}: {count[0]}/{len(examples)} questions ({time.perf_counter() - start:.0f} s)")

        if todo[m]:
            records = evaluate(
                m,
                generator,
                todo[m],
                engine=engine,
                rollout_cfg=cfg.rollout,
                batch_size=cfg.eval.batch_size,
                k=cfg.engine.k,
                on_batch=on_batch,
            )
            done.setdefault(m, {}).update((record_key(r), r) for r in records)
    return {m: [done[m][key(ex)] for ex in examples] for m in methods}


def train_stage(cfg: TrainConfig, nice: int = 0) -> Path:
    """RL training of `cfg` into cfg.out: a rerun resumes from the last checkpoint (with the same config, checked),
    and a finished run is returned without loading anything. `nice` lowers this process's CPU priority (a run in
    the background of another)."""
    from zerosearch.rl import checkpoint
    from zerosearch.rl.trainer import train

    if nice:
        os.nice(nice)
    release_freed_memory()
    saved = checkpoint.checkpoints(cfg.out)
    if saved:
        checkpoint.check_resume(cfg.out, cfg)
        if int(saved[-1].name.split("-")[-1]) >= cfg.rl.steps:
            say(f"RL: {cfg.out} has trained its {cfg.rl.steps} steps already")
            return Path(cfg.out)
    say(
        f"RL ({cfg.rl.algo}, {cfg.rl.steps} steps of {cfg.rl.prompts_per_step} x {cfg.rl.samples_per_prompt}) "
        f"against {engine_label(cfg)} into {cfg.out}"
    )
    return train(cfg, resume=bool(saved))


def engine_label(cfg: TrainConfig) -> str:
    e = cfg.engine
    return f"the simulator {e.simulator_model} ({e.simulator_prompt} prompt)" if e.name == "simulator" else e.name


def simulator_report(cfg: TrainConfig, out: str | Path) -> Path:
    """OUT/report.json: the report card of the simulator that cfg trains against (docs/simulator.md). The built
    `mini-world:simulator` carries one, graded when it was built (building it now if it is not cached); for another
    engine the file says that none was made: grading takes minutes, and the demo does not grade."""
    from zerosearch.models import BUILT
    from zerosearch.sft.miniworld import SPEC, cached

    e, path = cfg.engine, Path(out) / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if e.name == "simulator" and e.simulator_model in BUILT:
        shutil.copyfile(cached(spec=e.simulator_model) / "report.json", path)
    else:
        note = {
            "engine": e.name,
            "simulator": e.simulator_model if e.name == "simulator" else None,
            "simulator_prompt": e.simulator_prompt if e.name == "simulator" else None,
            "report_card": None,
            "why": f"only {SPEC} carries a report card; grade another simulator with `zerosearch sft grade`",
        }
        path.write_text(json.dumps(note, indent=2) + "\n")
    return path


def _ci(ci: dict, sign: str = "") -> str:
    return f"{100 * ci['mean']:{sign}.1f} [{100 * ci['lo']:{sign}.1f}, {100 * ci['hi']:{sign}.1f}]"


def results_markdown(summaries: dict[str, dict], diffs: dict[str, dict]) -> str:
    """A markdown table: each policy's EM/F1 (%, 95% bootstrap CI), searches and answer rate, then the paired
    differences (`paired_difference`)."""
    from zerosearch.eval.metrics import AVERAGE

    rows = ["| policy | EM % | F1 % | searches/question | answer rate |", "|---|---:|---:|---:|---:|"]
    for name, summary in summaries.items():
        s = summary[AVERAGE]
        rows.append(
            f"| {name} | {_ci(s['em'])} | {_ci(s['f1'])} | {s['searches_per_question']:.2f} | "
            f"{100 * s['answer_rate']:.0f}% |"
        )
    for name, diff in diffs.items():
        d = diff[AVERAGE]
        rows.append(f"| {name} | {_ci(d['em'], '+')} | {_ci(d['f1'], '+')} | | |")
    return "\n".join(rows) + "\n"


def run_demo(cfg: TrainConfig) -> dict:
    """The demo of a root config: its `demo` section sizes RL and the evaluation, its `warmstart` section the warm
    start (demo.warm_start false: RL from the untrained model, as in the paper)."""
    from rich.console import Console
    from rich.markdown import Markdown

    from zerosearch.data import load_questions
    from zerosearch.eval.metrics import paired_difference, summarize
    from zerosearch.eval.report import write_results
    from zerosearch.rl import checkpoint
    from zerosearch.rl.plot import plot_run
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

    console.rule(f"2. the training engine: {engine_label(cfg)}")
    report = simulator_report(cfg, out / "simulator")
    console.print(f"its report card: {report}")

    # RAG (one search with the question, then answer) is run by the model RL starts from, as in
    # benchmarks/learning.py: the untrained 135M model does not answer in the protocol's tags, so its RAG scores 0.
    console.rule("3. untrained policy vs BM25")
    bm25 = bm25_engine(cfg)
    methods = ("policy",) if demo.warm_start else ("rag", "policy")
    rl_start = evaluate_model(model, test_qs, cfg, bm25, methods=methods)
    records = {"untrained": rl_start["policy"]}
    if demo.warm_start:
        console.rule("4. warm start: SFT on oracle search demonstrations")
        warm = warm_start_stage(cfg, out / "warm")
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, spec=str(warm)))
        rl_start = evaluate_model(cfg.model.spec, test_qs, cfg, bm25, methods=("rag", "policy"))
        records["warm-started"] = rl_start["policy"]
    records = {"rag-bm25": rl_start["rag"], **records}

    console.rule(f"5. RL ({cfg.rl.algo}, {cfg.rl.steps} steps) against the simulator, with the curriculum")
    run_dir = train_stage(cfg)

    console.rule("6. trained policy vs BM25")
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

    console.print(
        Markdown(
            f"**held-out mini-world, BM25 at evaluation, greedy ({len(test_qs)} questions; 95% bootstrap CI)**\n\n"
            + results_markdown(summaries, diffs)
        )
    )
    console.print(
        f"run (metrics.jsonl, checkpoints): {run_dir}\nplots: {plots[0].parent}\n"
        f"trajectory viewer: {viewer}\nevaluation (table.md, results.json, per-question jsonl): {out / 'eval'}\n"
        f"simulator report card: {report}\ntotal time: {(time.perf_counter() - start) / 60:.1f} min\n"
        f"{cfg.rl.steps} RL steps and {len(test_qs)} questions show the loop, not a significant gain; "
        f"the statistically meaningful run: {LEARNING_RESULTS}"
    )
    return {"summaries": summaries, "differences": diffs}
