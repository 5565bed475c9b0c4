"""`zerosearch sft collect | judge | build | train | grade`: the simulator's own training pipeline.

See docs/data.md (collect, judge, build, train) and docs/evaluation.md (grade).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from zerosearch.errors import UserError
from zerosearch.options import ConfigOption, SetOption, load

sft = typer.Typer(
    help="Train the simulator: collect real interactions, judge, build the SFT set, fine-tune, grade.",
    no_args_is_help=True,
)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    typer.echo(f"wrote {path}")


def _stats_path(path: Path) -> Path:
    return path.with_name(path.stem + ".stats.json")


def _generator(model: str, base_url: str):
    from zerosearch.config import ModelConfig
    from zerosearch.generation import make_generator

    return make_generator(ModelConfig(spec=model, backend="openai" if base_url else "hf", base_url=base_url))


@sft.command()
def collect(
    out: Annotated[
        Optional[Path],
        typer.Option(help="append-only interactions jsonl (a rerun skips questions already in it) (= collect.out)"),
    ] = None,
    data: Annotated[
        Optional[str], typer.Option(help="training questions: a file, or mini-world:train (= collect.data)")
    ] = None,
    engine: Annotated[
        Optional[str], typer.Option(help="the REAL engine: bm25 | dense | web | remote (= collect.engine)")
    ] = None,
    corpus: Annotated[Optional[str], typer.Option(help="corpus for bm25/dense (= collect.corpus)")] = None,
    urls: Annotated[Optional[str], typer.Option(help="server URL(s) for remote/web (= collect.urls)")] = None,
    queries: Annotated[
        Optional[str],
        typer.Option(
            help="agent (the paper's way) | oracle (the question and its hop sub-questions) | both (= collect.queries)"
        ),
    ] = None,
    model: Annotated[Optional[str], typer.Option(help="the agent model (any instruct model) (= collect.model)")] = None,
    base_url: Annotated[
        Optional[str],
        typer.Option(help="OpenAI-compatible server serving --model (default: in-process) (= collect.base_url)"),
    ] = None,
    prompt: Annotated[
        Optional[str], typer.Option(help="agent prompt: agent (ReAct-like) | policy (Search-R1) (= collect.prompt)")
    ] = None,
    samples: Annotated[Optional[int], typer.Option(help="trajectories per question (= collect.samples)")] = None,
    max_turns: Annotated[
        Optional[int],
        typer.Option(help="agent search turns per trajectory, then one answer turn (= collect.max_turns)"),
    ] = None,
    max_turn_tokens: Annotated[
        Optional[int], typer.Option(help="new tokens per agent turn (= collect.max_turn_tokens)")
    ] = None,
    temperature: Annotated[
        Optional[float], typer.Option(help="agent sampling temperature (= collect.temperature)")
    ] = None,
    k: Annotated[Optional[int], typer.Option(help="documents per search (= collect.k)")] = None,
    limit: Annotated[Optional[int], typer.Option(help="first N questions only (= collect.limit)")] = None,
    batch_size: Annotated[
        Optional[int], typer.Option(help="questions per batch (one append per batch) (= collect.batch_size)")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="sampling seed (= collect.seed)")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Run an agent (and/or oracle queries) against a real engine; keep every (question, query, documents)."""
    from zerosearch import prompts
    from zerosearch.config import EngineConfig, RolloutConfig
    from zerosearch.data import load_questions
    from zerosearch.engines import make_engine
    from zerosearch.sft.collect import collect as run
    from zerosearch.sft.collect import collect_stats, read_records

    given = dict(
        out=out and str(out),
        data=data,
        engine=engine,
        corpus=corpus,
        urls=urls,
        queries=queries,
        model=model,
        base_url=base_url,
        prompt=prompt,
        samples=samples,
        max_turns=max_turns,
        max_turn_tokens=max_turn_tokens,
        temperature=temperature,
        k=k,
        limit=limit,
        batch_size=batch_size,
        seed=seed,
    )
    c = load(config, set_, {f"collect.{name}": v for name, v in given.items()}).collect
    out = Path(c.out)
    templates = {"agent": prompts.AGENT_PROMPT, "policy": prompts.POLICY_PROMPT}
    examples = load_questions(c.data, limit=c.limit, seed=c.seed)
    search_engine = make_engine(EngineConfig(name=c.engine, corpus=c.corpus, urls=c.urls, k=c.k))
    kw = {}
    if c.queries != "oracle":
        kw = dict(
            generator=_generator(c.model, c.base_url),
            rollout_cfg=RolloutConfig(
                max_turns=c.max_turns, max_turn_tokens=c.max_turn_tokens, temperature=c.temperature
            ),
            samples=c.samples,
            prompt_template=templates[c.prompt],
        )
    n = run(examples, search_engine, out, batch_size=c.batch_size, source=c.queries, k=c.k, seed=c.seed, **kw)
    stats = collect_stats(read_records(out)) | {
        "collected_now": n,
        "engine": search_engine.identity(),
        "queries": c.queries,
    }
    _write_json(_stats_path(out), stats)
    typer.echo(json.dumps(stats["sources"]))


@sft.command()
def judge(
    input: Annotated[
        Optional[Path], typer.Option("--input", "-i", help="interactions jsonl from `sft collect` (= judge.input)")
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="labelled interactions jsonl (= judge.out)")] = None,
    judges: Annotated[
        Optional[list[str]],
        typer.Option(
            "--judge",
            help="rule | llm (repeatable: the first labels, a second is compared: Cohen's κ) (= judge.judges)",
        ),
    ] = None,
    model: Annotated[Optional[str], typer.Option(help="the LLM judge's model (= judge.model)")] = None,
    base_url: Annotated[
        Optional[str],
        typer.Option(help="OpenAI-compatible server serving --model (default: in-process) (= judge.base_url)"),
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="LLM judge prompts per batch (= judge.batch_size)")] = None,
    limit: Annotated[Optional[int], typer.Option(help="first N interactions only (= judge.limit)")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Label each interaction's documents useful or noisy; report agreement between two judges."""
    from zerosearch.sft.collect import read_records
    from zerosearch.sft.judge import LLMJudge, RuleJudge
    from zerosearch.sft.judge import judge as run

    flags = {"judge.input": input and str(input), "judge.out": out and str(out), "judge.model": model}
    flags |= {"judge.judges": ",".join(judges) if judges else None, "judge.base_url": base_url}
    j = load(config, set_, flags | {"judge.batch_size": batch_size, "judge.limit": limit}).judge
    input, out = Path(j.input), Path(j.out)
    records = [r for r in read_records(input) if r.get("query") and r.get("documents")][: j.limit]
    instances = [
        RuleJudge() if name == "rule" else LLMJudge(_generator(j.model, j.base_url), batch_size=j.batch_size)
        for name in j.judge_names
    ]
    stats = run(records, instances) | {"input": str(input)}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    typer.echo(f"wrote {out}")
    _write_json(_stats_path(out), stats)
    typer.echo(json.dumps({k: v for k, v in stats.items() if k in ("judges", "agreement")}))


@sft.command()
def build(
    input: Annotated[
        Optional[Path], typer.Option("--input", "-i", help="labelled interactions from `sft judge` (= build.input)")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="directory for train.jsonl, validation.jsonl, stats.json (= build.out)")
    ] = None,
    k: Annotated[Optional[int], typer.Option(help="documents per example (= build.k)")] = None,
    max_doc_words: Annotated[
        Optional[int], typer.Option(help="words kept per document (= build.max_doc_words)")
    ] = None,
    balance: Annotated[
        Optional[float],
        typer.Option(help="cap the majority mode at this multiple of the minority (0 = off) (= build.balance)"),
    ] = None,
    val_fraction: Annotated[
        Optional[float],
        typer.Option(help="fraction of questions held out for validation (and `sft grade`) (= build.val_fraction)"),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="seed of balancing and the split (= build.seed)")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Build the SFT chat pairs (exact §2.3 prompt → `Doc i:` documents), balanced, deduplicated, split."""
    from zerosearch.sft.build import build as run
    from zerosearch.sft.collect import read_records

    flags = {"build.input": input and str(input), "build.out": out and str(out), "build.k": k}
    flags |= {"build.max_doc_words": max_doc_words, "build.balance": balance, "build.val_fraction": val_fraction}
    b = load(config, set_, flags | {"build.seed": seed}).build
    input, out = Path(b.input), Path(b.out)
    train, val, stats = run(
        read_records(input),
        k=b.k,
        max_doc_words=b.max_doc_words,
        balance=b.balance,
        val_fraction=b.val_fraction,
        seed=b.seed,
    )
    if not train:
        raise UserError(f"{input}: no usable example (stats: {json.dumps(stats['dropped'])})")
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("validation", val)):
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    _write_json(out / "stats.json", stats | {"input": str(input)})
    typer.echo(json.dumps({"train": stats["train"], "validation": stats["validation"]}))


@sft.command()
def train(
    model: Annotated[Optional[str], typer.Option(help="base model spec (= sft.model)")] = None,
    data: Annotated[Optional[str], typer.Option(help="directory from `sft build` (= sft.data)")] = None,
    out: Annotated[Optional[str], typer.Option(help="output model directory (= sft.out)")] = None,
    steps: Annotated[Optional[int], typer.Option(help="optimizer steps (= sft.steps)")] = None,
    lr: Annotated[Optional[float], typer.Option(help="learning rate (= sft.lr)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="examples per step (= sft.batch_size)")] = None,
    lora_r: Annotated[Optional[int], typer.Option(help="LoRA rank (0 = full fine-tuning) (= sft.lora_r)")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="tokens per example (= sft.max_length)")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Fine-tune the simulator with TRL's SFTTrainer (loss on the assistant turn; resumes from checkpoints)."""
    from zerosearch.sft.finetune import finetune

    flags = {"sft.model": model, "sft.data": data, "sft.out": out, "sft.steps": steps, "sft.lr": lr}
    flags |= {"sft.batch_size": batch_size, "sft.lora_r": lora_r, "sft.max_length": max_length}
    cfg = load(config, set_, flags).sft
    stats = finetune(cfg)
    typer.echo(json.dumps({k: stats[k] for k in ("steps", "train_loss", "eval_loss", "seconds")}))
    typer.echo(f"model saved to {cfg.out} (use it as --model {cfg.out}, simulator prompt sft)")


@sft.command()
def grade(
    simulators: Annotated[
        Optional[list[str]],
        typer.Option(
            "--simulator",
            help="MODEL[:sft|fewshot] (repeatable), e.g. smollm2-135m:fewshot, runs/sft/model:sft (= grade.simulators)",
        ),
    ] = None,
    data: Annotated[
        Optional[Path],
        typer.Option(help="held-out examples: `sft build`'s directory or its validation.jsonl (= grade.data)"),
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="directory for report.md and report.json (= grade.out)")] = None,
    limit: Annotated[Optional[int], typer.Option(help="first N held-out queries (= grade.limit)")] = None,
    k: Annotated[Optional[int], typer.Option(help="documents per output (= grade.k)")] = None,
    max_new_tokens: Annotated[
        Optional[int], typer.Option(help="tokens per simulator output (= grade.max_new_tokens)")
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option(help="requests per generation batch (= grade.batch_size)")
    ] = None,
    temperature: Annotated[
        Optional[float],
        typer.Option(
            help="simulator sampling temperature (0 = greedy; grade with what training uses) (= grade.temperature)"
        ),
    ] = None,
    top_p: Annotated[Optional[float], typer.Option(help="simulator nucleus sampling (= grade.top_p)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="sampling seed (= grade.seed)")] = None,
    base_url: Annotated[
        Optional[str],
        typer.Option(help="OpenAI-compatible server for every --simulator (default: in-process) (= grade.base_url)"),
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Report card: answer-hit (useful), answer-leak (noisy), format validity, prompt copy, distinct-2, overlap,
    speed."""
    from zerosearch.sft.grade import grade as run
    from zerosearch.sft.grade import load_items, markdown, parse_spec

    flags = {"grade.simulators": ",".join(simulators) if simulators else None, "grade.data": data and str(data)}
    flags |= {"grade.out": out and str(out), "grade.limit": limit, "grade.k": k, "grade.max_new_tokens": max_new_tokens}
    flags |= {"grade.batch_size": batch_size, "grade.temperature": temperature, "grade.top_p": top_p}
    g = load(config, set_, flags | {"grade.seed": seed, "grade.base_url": base_url}).grade
    names = [s.strip() for s in g.simulators.split(",") if s.strip()]
    if not names:
        raise UserError("no simulator to grade: give --simulator MODEL[:sft|fewshot] (or grade.simulators)")
    specs = [parse_spec(s) for s in names]
    items = load_items(Path(g.data), g.limit)
    if not items:
        raise UserError(f"{g.data}: no held-out example")
    report = {}
    for spec, (model, prompt) in zip(names, specs):
        typer.echo(f"grading {spec} on {len(items)} queries × 2 modes …")
        report[spec] = run(
            _generator(model, g.base_url),
            prompt,
            items,
            k=g.k,
            max_new_tokens=g.max_new_tokens,
            batch_size=g.batch_size,
            temperature=g.temperature,
            top_p=g.top_p,
            seed=g.seed,
            ban_answers=g.ban_answers,
        )
    table = markdown(report)
    out = Path(g.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(table + "\n")
    _write_json(out / "report.json", report)
    typer.echo(table)


@sft.command()
def miniworld(
    out: Annotated[
        Optional[Path], typer.Option(help="build into this new directory (default: the cache: mini-world:simulator)")
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
):
    """Build `mini-world:simulator`: collect (oracle queries, BM25), judge, build, fine-tune smollm2-135m, grade
    (`mini-world:simulator-base`), then teach it the tiny recipe's RL questions (`mini-world:pool`) and grade again.

    Without --out it builds the cached models that the specs name (once; later calls print their report cards).
    With --out or a changed `simulator` section it builds separate ones (OUT/base, and OUT): use `--model OUT`.
    """
    from zerosearch.sft.grade import markdown
    from zerosearch.sft.miniworld import BASE_SPEC, SPEC, build, cached, check_out

    cfg = load(config, set_).simulator  # the `simulator` section, e.g. --set simulator.steps=60
    if out is None:
        paths = {BASE_SPEC: cached(cfg, BASE_SPEC), SPEC: cached(cfg)}
    else:
        check_out(out)
        build(out, cfg)
        paths = {str(out / "base"): out / "base", str(out): out}
    reports = {name: json.loads((path / "report.json").read_text()) for name, path in paths.items()}
    typer.echo(markdown(reports))
    path, report = list(paths.values())[-1], list(reports.values())[-1]
    typer.echo(json.dumps({"model": str(path), "met": report["met"]}))


def register(app: typer.Typer) -> None:
    app.add_typer(sft, name="sft")
