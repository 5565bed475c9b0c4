"""`zerosearch eval` (and `eval compare A B`), `zerosearch cost`, `zerosearch chat`.

Each command reads the root config (see docs/configuration.md): the model, engine and rollout sections and its own
(`eval`, `compare`, `cost`, `chat`); its typed flags are shorthands for those fields. Without a recipe (and without
`--set engine.name=...`) the engine is BM25 over the mini-world corpus; the simulator (a recipe's training engine) is
refused unless `--allow-oracle`, since it is given the gold answers (see docs/evaluation.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from zerosearch.errors import UserError
from zerosearch.options import ConfigOption, SetOption, load

_ENGINE_HELP = "simulator | bm25 | dense | web | remote | mixed (default bm25, or the recipe's)"


def _methods(values: list[str]) -> list[str]:
    from zerosearch.eval.methods import METHODS

    methods = list(dict.fromkeys(m.strip() for v in values for m in v.split(",") if m.strip()))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UserError(f"unknown method {', '.join(map(repr, unknown)) or '(none)'}; choose from {', '.join(METHODS)}")
    return methods


def _config(config, set_, flags, *, model, engine, corpus, k, max_turns):
    """The root config: its model/engine/rollout sections drive evaluation and chat."""
    engine_named = config is not None or any(s.strip().startswith("engine.name") for s in set_ or [])
    flags = flags | {
        "model.spec": model,
        "engine.name": engine or (None if engine_named else "bm25"),
        "engine.corpus": corpus,
        "engine.k": k,
        "rollout.max_turns": max_turns,
    }
    return load(config, set_, flags)


def _engine(cfg, generator):
    """The configured engine; a simulator of the same model as the policy shares its weights."""
    from zerosearch.engines import make_engine

    return make_engine(cfg.engine, generator=generator if cfg.engine.simulator_model == cfg.model.spec else None)


def _engine_label(engine_cfg) -> str:
    if engine_cfg.name in ("bm25", "dense"):
        return f"{engine_cfg.name} ({engine_cfg.corpus})"
    if engine_cfg.name in ("simulator", "mixed"):
        label = f"simulator ({engine_cfg.simulator_model}, {engine_cfg.simulator_prompt} prompt)"
        return (
            label
            if engine_cfg.name == "simulator"
            else f"mixed: {label} + {engine_cfg.real_engine} p_real={engine_cfg.p_real}"
        )
    return f"{engine_cfg.name} ({engine_cfg.urls or engine_cfg.web_provider})"


eval_app = typer.Typer(help="Evaluate methods on QA data against a search engine; `eval compare A B` diffs two runs.")


def _is_oracle(engine_cfg) -> bool:
    """The simulator writes its documents knowing each question's gold answers: as an evaluation engine it is an
    oracle. (So is `mixed`, unless every call goes to the real engine.)"""
    return engine_cfg.name == "simulator" or (engine_cfg.name == "mixed" and engine_cfg.p_real < 1.0)


def _settings(method: str, cfg, policy_spec: str, run: dict) -> dict:
    """What a method's records depend on: a resumed evaluation must not mix records of other settings."""
    from zerosearch.config import to_dict
    from zerosearch.eval.methods import MULTI_TURN, NEEDS_ENGINE

    settings = {"model": policy_spec if method == "policy" else cfg.model.spec, **run}
    if method in NEEDS_ENGINE:
        settings["engine"] = to_dict(cfg.engine)
    if method in MULTI_TURN:
        settings["rollout"] = to_dict(cfg.rollout)
    return settings


def _check_resume(out: Path, settings: dict[str, dict]) -> None:
    """OUT/settings.json records each method's settings; a rerun into OUT resumes only under the same ones."""
    path = out / "settings.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    settings = json.loads(json.dumps(settings))  # as JSON holds them (tuples become lists)
    for method, now in settings.items():
        before = previous.get(method, now)
        changed = next((k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)), None)
        if changed:
            raise UserError(
                f"{out} holds {method} results of other settings ({changed}: {before.get(changed)!r}, now "
                f"{now.get(changed)!r}); pass another --out to keep both"
            )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(previous | settings, indent=2) + "\n")


def _key(example) -> tuple[str, str]:
    from zerosearch.eval.metrics import source_of

    return source_of({"data_source": example.data_source}), str(example.id)


@eval_app.callback(invoke_without_command=True)
def evaluate(
    ctx: typer.Context,
    method: Annotated[
        Optional[list[str]],
        typer.Option(
            "--method",
            "-m",
            help="direct | cot | rag | agent | policy; repeatable or comma list (default policy) (= eval.methods)",
        ),
    ] = None,
    model: Annotated[
        Optional[str], typer.Option(help="model spec for every method (default smollm2-135m) (= model.spec)")
    ] = None,
    policy_model: Annotated[
        Optional[str],
        typer.Option(help="trained checkpoint for the policy method (default: --model) (= eval.policy_model)"),
    ] = None,
    engine: Annotated[Optional[str], typer.Option(help=_ENGINE_HELP)] = None,
    corpus: Annotated[
        Optional[str], typer.Option(help="corpus for bm25/dense (default mini-world:corpus) (= engine.corpus)")
    ] = None,
    k: Annotated[Optional[int], typer.Option(help="documents per search (default 5) (= engine.k)")] = None,
    data: Annotated[
        Optional[str], typer.Option(help="questions: a parquet/jsonl/csv file or mini-world:test (= eval.data)")
    ] = None,
    data_source: Annotated[
        Optional[str],
        typer.Option(
            "--data-source", help="keep only this data_source (e.g. nq) of a multi-dataset file (= eval.data_source)"
        ),
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option(help="at most this many questions (seeded sub-sample) (= eval.limit)")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="seed of sub-sampling and of the bootstrap (= eval.seed)")] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="results directory; a rerun into it resumes (questions already done are skipped) (= eval.out)"
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option(help="questions per generation batch (= eval.batch_size)")
    ] = None,
    max_turns: Annotated[
        Optional[int],
        typer.Option(help="search turns of agent/policy, then one answer turn (default 5) (= rollout.max_turns)"),
    ] = None,
    n_boot: Annotated[Optional[int], typer.Option(help="bootstrap resamples for the CIs (= eval.n_boot)")] = None,
    allow_oracle: Annotated[
        Optional[bool],
        typer.Option(
            "--allow-oracle",
            help="allow the simulator as the engine, although it is given the gold answers (results labelled ORACLE) "
            "(= eval.allow_oracle)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print results.json to stdout")] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Evaluate one or several methods; writes results.jsonl (per question, as batches finish), results.json,
    table.md and PNG plots. Rerun with the same --out to resume an interrupted evaluation."""
    if ctx.invoked_subcommand:
        return
    import contextlib
    import dataclasses

    from rich.console import Console
    from rich.markdown import Markdown

    from zerosearch.config import to_dict
    from zerosearch.data import load_questions
    from zerosearch.eval.methods import NEEDS_ENGINE
    from zerosearch.eval.methods import evaluate as run_method
    from zerosearch.eval.metrics import summarize
    from zerosearch.eval.report import append_records, read_records, record_key, write_results
    from zerosearch.generation import make_generator

    flags = {
        "eval.methods": ",".join(method) if method else None,
        "eval.policy_model": policy_model,
        "eval.data": data,
        "eval.data_source": data_source,
        "eval.limit": limit,
        "eval.seed": seed,
        "eval.out": out and str(out),
        "eval.batch_size": batch_size,
        "eval.n_boot": n_boot,
        "eval.allow_oracle": allow_oracle,
    }
    cfg = _config(config, set_, flags, model=model, engine=engine, corpus=corpus, k=k, max_turns=max_turns)
    e = cfg.eval
    methods = _methods([e.methods])
    data, data_source, limit, seed, out = e.data, e.data_source or None, e.limit, e.seed, Path(e.out)
    uses_engine = any(m in NEEDS_ENGINE for m in methods)
    oracle = uses_engine and _is_oracle(cfg.engine)
    if oracle and not e.allow_oracle:
        raise UserError(
            f"engine {cfg.engine.name!r} is given every question's gold answers, so it is an oracle, not a search "
            "engine: pass --engine bm25|dense|web|remote, or --allow-oracle for results labelled ORACLE"
        )
    examples = load_questions(data, data_source=data_source, limit=limit, seed=seed)
    if not examples:
        raise UserError(f"{data}: no questions{f' with data_source {data_source!r}' if data_source else ''}")
    policy_cfg = dataclasses.replace(cfg.model, spec=e.policy_model) if e.policy_model else cfg.model
    run = {"data": str(data), "data_source": data_source, "limit": limit, "seed": seed}
    _check_resume(out, {m: _settings(m, cfg, policy_cfg.spec, run) for m in methods})
    done = {m: {record_key(r): r for r in recs} for m, recs in read_records(out).items()}
    todo = {m: [ex for ex in examples if _key(ex) not in done.get(m, {})] for m in methods}

    log = Console(stderr=True)
    generator = policy_generator = search_engine = None
    if any(todo.values()):
        generator = make_generator(cfg.model)
        policy_generator = make_generator(policy_cfg) if e.policy_model and todo.get("policy") else generator
        search_engine = _engine(cfg, generator) if any(todo[m] for m in methods if m in NEEDS_ENGINE) else None

    records, seconds = {}, {}
    for m in methods:
        count, start = [len(examples) - len(todo[m])], time.perf_counter()
        if count[0]:
            log.print(f"{m}: {count[0]}/{len(examples)} questions already in {out}, resuming")
        # A live status on a terminal; a line per batch otherwise (logs, CI, nohup), where a status shows nothing.
        live = log.status(f"{m}: {count[0]}/{len(examples)}") if log.is_terminal else contextlib.nullcontext()
        with live as status:

            def on_batch(batch, m=m, status=status, count=count, start=start):
                append_records(out, m, batch)
                count[0] += len(batch)
                line = f"{m}: {count[0]}/{len(examples)} questions, {time.perf_counter() - start:.0f} s"
                if status:
                    status.update(line)
                else:
                    log.print(line)

            if todo[m]:
                gen = policy_generator if m == "policy" else generator
                for r in run_method(
                    m,
                    gen,
                    todo[m],
                    engine=search_engine,
                    rollout_cfg=cfg.rollout,
                    batch_size=e.batch_size,
                    k=cfg.engine.k,
                    on_batch=on_batch,
                ):
                    done.setdefault(m, {})[record_key(r)] = r
        records[m] = [done[m][_key(ex)] for ex in examples]
        seconds[m] = round(time.perf_counter() - start, 1)
        log.print(f"{m}: {len(examples)} questions in {seconds[m]} s")
    meta = {
        "model": cfg.model.spec,
        "policy_model": policy_cfg.spec,
        "engine": _engine_label(cfg.engine) if uses_engine else None,
        "oracle": oracle,
        "engine_config": to_dict(cfg.engine) if uses_engine else None,
        "engine_meter": search_engine.meter.to_dict() if search_engine else None,
        "rollout": to_dict(cfg.rollout),
        "data": data,
        "data_source": data_source,
        "limit": limit,
        "seed": seed,
        "n_questions": len(examples),
        "n_boot": e.n_boot,
        "seconds": seconds,
    }
    summaries = {m: summarize(records[m], n_boot=e.n_boot, seed=seed) for m in methods}
    results = write_results(out, records, summaries, meta)
    if as_json:
        print(json.dumps({**results, "out": str(out)}, indent=2, ensure_ascii=False))
    else:
        Console().print(Markdown((out / "table.md").read_text()))
        log.print(f"results in {out}/ (results.json, table.md, {', '.join(results['files']['plots'])})")


@eval_app.command("compare")
def compare(
    a: Annotated[Path, typer.Argument(help="baseline: a per-question jsonl file or a results directory")],
    b: Annotated[Path, typer.Argument(help="candidate: same questions as A")],
    method: Annotated[
        Optional[str], typer.Option(help="method to read from a results directory holding several (= compare.method)")
    ] = None,
    n_boot: Annotated[Optional[int], typer.Option(help="bootstrap resamples (= compare.n_boot)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="bootstrap seed (= compare.seed)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Paired-bootstrap differences B − A (EM, cover-EM, F1) per data source and averaged, over the same
    question ids."""
    from rich.console import Console
    from rich.table import Table

    from zerosearch.eval.metrics import METRICS, paired_difference
    from zerosearch.eval.report import METRIC_NAMES, load_records, title

    c = load(config, set_, {"compare.method": method, "compare.n_boot": n_boot, "compare.seed": seed}).compare
    label_a, records_a = load_records(a, c.method or None)
    label_b, records_b = load_records(b, c.method or None)
    diff = paired_difference(records_a, records_b, n_boot=c.n_boot, seed=c.seed)
    if as_json:
        print(json.dumps({"a": label_a, "b": label_b, "difference": "B - A", "by_source": diff}, indent=2))
        return
    table = Table(title=f"B − A: {label_b} − {label_a} (paired bootstrap 95% CI; p = share of resamples ≤ 0)")
    table.add_column("data source")
    table.add_column("n", justify="right")
    for metric in METRICS:
        table.add_column(f"Δ {METRIC_NAMES[metric]} (%)", justify="right")
    for src, row in diff.items():
        cells = [
            f"{100 * d['mean']:+.1f} ({100 * d['lo']:+.1f}–{100 * d['hi']:+.1f}) p={d['p_le_0']:.3f}"
            for d in (row[mt] for mt in METRICS)
        ]
        table.add_row(title(src), str(row["n"]), *cells)
    Console().print(table)


def cost(
    run: Annotated[Optional[Path], typer.Argument(help="training run directory (reads its metrics.jsonl)")] = None,
    searches: Annotated[
        Optional[int], typer.Option(help="number of searches (overrides the run's count) (= cost.searches)")
    ] = None,
    gpu_hours: Annotated[
        Optional[float],
        typer.Option(help="hours the simulator's GPUs are held (default: the run's wall time) (= cost.gpu_hours)"),
    ] = None,
    gpus: Annotated[Optional[int], typer.Option(help="GPUs serving the simulator (= cost.gpus)")] = None,
    gpu_price: Annotated[
        Optional[float], typer.Option(help="$ per GPU-hour (default: the paper's A100 rate) (= cost.gpu_price)")
    ] = None,
    api_price: Annotated[
        Optional[float],
        typer.Option(help="search API $ per 1k queries (default: SerpAPI-like, the paper's rate) (= cost.api_price)"),
    ] = None,
    paper: Annotated[
        Optional[bool],
        typer.Option("--paper", help="reproduce the paper's Table 8 arithmetic from its inputs (= cost.paper)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Search API cost vs simulator GPU cost of a training run (or of the paper's run, with --paper)."""
    from rich.console import Console

    from zerosearch.eval.cost import PAPER, PAPER_SOURCES, CostInputs, cost_report, run_counts

    flags = {"cost.searches": searches, "cost.gpu_hours": gpu_hours, "cost.gpus": gpus, "cost.paper": paper}
    c = load(config, set_, flags | {"cost.gpu_price": gpu_price, "cost.api_price": api_price}).cost
    if c.paper:
        if run:
            raise UserError("cost.paper uses the paper's inputs: drop the run directory")
        report = cost_report(PAPER, PAPER_SOURCES)
    else:
        counts = run_counts(run) if run else None
        if c.searches is None and counts is None:
            raise UserError("give a training run directory, or --searches (and --gpu-hours), or --paper")
        gpu_hours = c.gpu_hours
        if gpu_hours is None:
            gpu_hours = counts["wall_seconds"] / 3600 if counts else 0.0
        defaults = CostInputs(searches=0)
        inputs = CostInputs(
            searches=c.searches if c.searches is not None else counts["searches"],
            api_price_per_1k=defaults.api_price_per_1k if c.api_price is None else c.api_price,
            gpu_hours=gpu_hours,
            gpu_count=c.gpus,
            gpu_price_per_hour=defaults.gpu_price_per_hour if c.gpu_price is None else c.gpu_price,
        )
        report = cost_report(inputs, counts=counts)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from rich.table import Table

    table = Table(title="cost inputs", show_header=True)
    for column in ("input", "value", "source"):
        table.add_column(column, justify="right" if column == "value" else "left")
    i = report["inputs"]
    for name, value in i.items():
        table.add_row(
            name,
            f"{value:,}" if isinstance(value, int) else f"{value:,.4f}",
            report.get("sources", {}).get(name, "run / flags"),
        )
    console = Console()
    console.print(table)
    console.print(
        f"search API: {i['searches']:,} searches × ${i['api_price_per_1k']:.4f}/1k = "
        f"[bold]${report['api_cost']:,.2f}[/]"
    )
    console.print(
        f"simulator:  {i['gpu_count']} GPU × {i['gpu_hours']:.2f} h × ${i['gpu_price_per_hour']:.4f}/h = "
        f"[bold]${report['gpu_cost']:,.2f}[/]"
    )
    if report["saving_pct"] is not None:
        console.print(f"saving: ${report['saving']:,.2f} ({report['saving_pct']}%)")


def chat(
    model: Annotated[
        Optional[str], typer.Option(help="policy model spec (default smollm2-135m) (= model.spec)")
    ] = None,
    engine: Annotated[Optional[str], typer.Option(help=_ENGINE_HELP)] = None,
    corpus: Annotated[
        Optional[str], typer.Option(help="corpus for bm25/dense (default mini-world:corpus) (= engine.corpus)")
    ] = None,
    question: Annotated[Optional[str], typer.Option(help="ask this once and exit (default: interactive)")] = None,
    prompt: Annotated[
        Optional[str],
        typer.Option(help="policy (the trained protocol) | agent (the prompted baseline) (= chat.prompt)"),
    ] = None,
    k: Annotated[Optional[int], typer.Option(help="documents per search (= engine.k)")] = None,
    max_turns: Annotated[
        Optional[int], typer.Option(help="search turns per question, then one answer turn (= rollout.max_turns)")
    ] = None,
    temperature: Annotated[Optional[float], typer.Option(help="0 = greedy (= chat.temperature)")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Ask the agent questions and watch it think, search and answer, turn by turn."""
    from rich.console import Console

    from zerosearch import prompts
    from zerosearch.eval.chat import ask
    from zerosearch.generation import make_generator

    templates = {"policy": prompts.policy_prompt, "agent": prompts.AGENT_PROMPT}
    flags = {"chat.prompt": prompt, "chat.temperature": temperature}
    cfg = _config(config, set_, flags, model=model, engine=engine, corpus=corpus, k=k, max_turns=max_turns)
    prompt, temperature = cfg.chat.prompt, cfg.chat.temperature
    cfg.rollout.temperature = temperature
    console = Console()
    generator = make_generator(cfg.model)
    search_engine = _engine(cfg, generator)
    console.print(
        f"[dim]model {cfg.model.spec} · engine {_engine_label(cfg.engine)} · "
        f"{'greedy' if temperature == 0 else f'temperature {temperature}'}[/]"
    )
    while True:
        q = question
        if q is None:
            try:
                q = console.input("[bold]question>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not q:
                break
        ask(
            q,
            generator,
            search_engine,
            cfg.rollout,
            template=templates[prompt],
            greedy=temperature == 0,
            k=cfg.engine.k,
            console=console,
        )
        if question is not None:
            break


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
    app.command()(cost)
    app.command()(chat)
