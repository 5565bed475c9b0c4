"""`zerosearch sft collect | judge | build | train | grade`: the simulator's own training pipeline.

See docs/data.md (collect, judge, build, train) and docs/evaluation.md (grade).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from zerosearch.errors import UserError

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
        Path, typer.Option(help="append-only interactions jsonl (a rerun skips questions already in it)")
    ] = Path("runs/sft/interactions.jsonl"),
    data: Annotated[str, typer.Option(help="training questions: a file, or mini-world:train")] = "mini-world:train",
    engine: Annotated[str, typer.Option(help="the REAL engine: bm25 | dense | web | remote")] = "bm25",
    corpus: Annotated[str, typer.Option(help="corpus for bm25/dense")] = "mini-world:corpus",
    urls: Annotated[str, typer.Option(help="server URL(s) for remote/web")] = "",
    queries: Annotated[
        str, typer.Option(help="agent (the paper's way) | oracle (the question and its hop sub-questions) | both")
    ] = "both",
    model: Annotated[str, typer.Option(help="the agent model (any instruct model)")] = "smollm2-135m",
    base_url: Annotated[str, typer.Option(help="OpenAI-compatible server serving --model (default: in-process)")] = "",
    prompt: Annotated[str, typer.Option(help="agent prompt: agent (ReAct-like) | policy (Search-R1)")] = "agent",
    samples: Annotated[int, typer.Option(help="trajectories per question")] = 2,
    max_turns: Annotated[int, typer.Option(help="agent search turns per trajectory, then one answer turn")] = 3,
    max_turn_tokens: Annotated[int, typer.Option(help="new tokens per agent turn")] = 128,
    temperature: Annotated[float, typer.Option(help="agent sampling temperature")] = 1.0,
    k: Annotated[int, typer.Option(help="documents per search")] = 5,
    limit: Annotated[Optional[int], typer.Option(help="first N questions only")] = None,
    batch_size: Annotated[int, typer.Option(help="questions per batch (one append per batch)")] = 8,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
):
    """Run an agent (and/or oracle queries) against a real engine; keep every (question, query, documents)."""
    from zerosearch import prompts
    from zerosearch.config import EngineConfig, RolloutConfig
    from zerosearch.data import load_questions
    from zerosearch.engines import make_engine
    from zerosearch.sft.collect import SOURCES, collect_stats, read_records
    from zerosearch.sft.collect import collect as run

    if queries not in SOURCES:
        raise UserError(f"--queries must be one of {list(SOURCES)}, got {queries!r}")
    if engine in ("simulator", "mixed"):
        raise UserError(
            f"--engine must be a real engine (bm25, dense, web, remote), got {engine!r}: the SFT data must be real"
        )
    templates = {"agent": prompts.AGENT_PROMPT, "policy": prompts.POLICY_PROMPT}
    if prompt not in templates:
        raise UserError(f"--prompt must be one of {list(templates)}, got {prompt!r}")
    if samples < 1 or batch_size < 1:
        raise UserError("--samples and --batch-size must be >= 1")
    examples = load_questions(data, limit=limit, seed=seed)
    search_engine = make_engine(EngineConfig(name=engine, corpus=corpus, urls=urls, k=k))
    kw = {}
    if queries != "oracle":
        kw = dict(
            generator=_generator(model, base_url),
            rollout_cfg=RolloutConfig(max_turns=max_turns, max_turn_tokens=max_turn_tokens, temperature=temperature),
            samples=samples,
            prompt_template=templates[prompt],
        )
    n = run(examples, search_engine, out, batch_size=batch_size, source=queries, k=k, seed=seed, **kw)
    stats = collect_stats(read_records(out)) | {
        "collected_now": n,
        "engine": search_engine.identity(),
        "queries": queries,
    }
    _write_json(_stats_path(out), stats)
    typer.echo(json.dumps(stats["sources"]))


@sft.command()
def judge(
    input: Annotated[Path, typer.Option("--input", "-i", help="interactions jsonl from `sft collect`")] = Path(
        "runs/sft/interactions.jsonl"
    ),
    out: Annotated[Path, typer.Option(help="labelled interactions jsonl")] = Path("runs/sft/judged.jsonl"),
    judges: Annotated[
        Optional[list[str]],
        typer.Option("--judge", help="rule | llm (repeatable: the first labels, a second is compared: Cohen's κ)"),
    ] = None,
    model: Annotated[str, typer.Option(help="the LLM judge's model")] = "smollm2-135m",
    base_url: Annotated[str, typer.Option(help="OpenAI-compatible server serving --model (default: in-process)")] = "",
    batch_size: Annotated[int, typer.Option(help="LLM judge prompts per batch")] = 8,
    limit: Annotated[Optional[int], typer.Option(help="first N interactions only")] = None,
):
    """Label each interaction's documents useful or noisy; report agreement between two judges."""
    from zerosearch.sft.collect import read_records
    from zerosearch.sft.judge import LLMJudge, RuleJudge
    from zerosearch.sft.judge import judge as run

    names = judges or ["rule"]
    unknown = [j for j in names if j not in ("rule", "llm")]
    if unknown or len(set(names)) != len(names):
        raise UserError(f"--judge takes distinct values among rule, llm; got {names}")
    records = [r for r in read_records(input) if r.get("query") and r.get("documents")][:limit]
    instances = [
        RuleJudge() if j == "rule" else LLMJudge(_generator(model, base_url), batch_size=batch_size) for j in names
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
    input: Annotated[Path, typer.Option("--input", "-i", help="labelled interactions from `sft judge`")] = Path(
        "runs/sft/judged.jsonl"
    ),
    out: Annotated[Path, typer.Option(help="directory for train.jsonl, validation.jsonl, stats.json")] = Path(
        "runs/sft/data"
    ),
    k: Annotated[int, typer.Option(help="documents per example")] = 5,
    max_doc_words: Annotated[int, typer.Option(help="words kept per document")] = 40,
    balance: Annotated[
        float, typer.Option(help="cap the majority mode at this multiple of the minority (0 = off)")
    ] = 1.0,
    val_fraction: Annotated[
        float, typer.Option(help="fraction of questions held out for validation (and `sft grade`)")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="seed of balancing and the split")] = 0,
):
    """Build the SFT chat pairs (exact §2.3 prompt → `Doc i:` documents), balanced, deduplicated, split."""
    from zerosearch.sft.build import build as run
    from zerosearch.sft.collect import read_records

    if k < 1 or max_doc_words < 1 or balance < 0 or not 0 <= val_fraction < 1:
        raise UserError("need --k >= 1, --max-doc-words >= 1, --balance >= 0 and 0 <= --val-fraction < 1")
    train, val, stats = run(
        read_records(input), k=k, max_doc_words=max_doc_words, balance=balance, val_fraction=val_fraction, seed=seed
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
    model: Annotated[Optional[str], typer.Option(help="base model spec")] = None,
    data: Annotated[Optional[str], typer.Option(help="directory from `sft build`")] = None,
    out: Annotated[Optional[str], typer.Option(help="output model directory")] = None,
    steps: Annotated[Optional[int], typer.Option(help="optimizer steps")] = None,
    lr: Annotated[Optional[float], typer.Option(help="learning rate")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="examples per step")] = None,
    lora_r: Annotated[Optional[int], typer.Option(help="LoRA rank (0 = full fine-tuning)")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="tokens per example")] = None,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", help="YAML file of SFTConfig fields, or a shipped recipe: sft-paper"),
    ] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="override a field: name=value (repeatable)")
    ] = None,
):
    """Fine-tune the simulator with TRL's SFTTrainer (loss on the assistant turn; resumes from checkpoints)."""
    from zerosearch.config import SFTConfig, load_config
    from zerosearch.sft.finetune import finetune

    flags = {
        "model": model,
        "data": data,
        "out": out,
        "steps": steps,
        "lr": lr,
        "batch_size": batch_size,
        "lora_r": lora_r,
        "max_length": max_length,
    }
    # `--set sft.steps=10` and `--set steps=10` both work: the section prefix is optional here.
    overrides = [s.removeprefix("sft.") for s in set_ or []]
    cfg = load_config(SFTConfig, config, overrides, flags)
    stats = finetune(cfg)
    typer.echo(json.dumps({k: stats[k] for k in ("steps", "train_loss", "eval_loss", "seconds")}))
    typer.echo(f"model saved to {cfg.out} (use it as --model {cfg.out}, simulator prompt sft)")


@sft.command()
def grade(
    simulators: Annotated[
        list[str],
        typer.Option(
            "--simulator", help="MODEL[:sft|fewshot] (repeatable), e.g. smollm2-135m:fewshot, runs/sft/model:sft"
        ),
    ],
    data: Annotated[
        Path, typer.Option(help="held-out examples: `sft build`'s directory or its validation.jsonl")
    ] = Path("runs/sft/data"),
    out: Annotated[Path, typer.Option(help="directory for report.md and report.json")] = Path("runs/sft/grade"),
    limit: Annotated[Optional[int], typer.Option(help="first N held-out queries")] = None,
    k: Annotated[int, typer.Option(help="documents per output")] = 5,
    max_new_tokens: Annotated[int, typer.Option(help="tokens per simulator output")] = 256,
    batch_size: Annotated[int, typer.Option(help="requests per generation batch")] = 8,
    temperature: Annotated[
        float, typer.Option(help="simulator sampling temperature (0 = greedy; grade with what training uses)")
    ] = 0.0,
    top_p: Annotated[float, typer.Option(help="simulator nucleus sampling")] = 1.0,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    base_url: Annotated[
        str, typer.Option(help="OpenAI-compatible server for every --simulator (default: in-process)")
    ] = "",
):
    """Report card: answer-hit (useful), answer-leak (noisy), format validity, prompt copy, distinct-2, overlap,
    speed."""
    from zerosearch.sft.grade import grade as run
    from zerosearch.sft.grade import load_items, markdown, parse_spec

    specs = [parse_spec(s) for s in simulators]
    items = load_items(data, limit)
    if not items:
        raise UserError(f"{data}: no held-out example")
    if temperature < 0 or not 0 < top_p <= 1:
        raise UserError(f"need --temperature >= 0 and 0 < --top-p <= 1, got {temperature} and {top_p}")
    report = {}
    for spec, (model, prompt) in zip(simulators, specs):
        typer.echo(f"grading {spec} on {len(items)} queries × 2 modes …")
        report[spec] = run(
            _generator(model, base_url),
            prompt,
            items,
            k=k,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
        )
    table = markdown(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(table + "\n")
    _write_json(out / "report.json", report)
    typer.echo(table)


@sft.command()
def miniworld(
    out: Annotated[
        Optional[Path], typer.Option(help="build into this new directory (default: the cache: mini-world:simulator)")
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", "-c", help="YAML file of SimulatorBuildConfig fields")
    ] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="field=value override, e.g. steps=60 (repeatable)")
    ] = None,
):
    """Build `mini-world:simulator`: collect (oracle queries, BM25), judge, build, fine-tune smollm2-135m, grade.

    Without --out it builds the cached model that the spec `mini-world:simulator` names (once; later calls print
    its report card). With --out or a changed recipe it builds a separate model: use it as `--model OUT`.
    """
    from zerosearch.config import SimulatorBuildConfig, load_config
    from zerosearch.sft.grade import markdown
    from zerosearch.sft.miniworld import SPEC, build_atomically, cached, check_out

    cfg = load_config(SimulatorBuildConfig, config, set_)
    if out is None:
        path = cached(cfg)
    else:
        check_out(out)
        path = build_atomically(out, cfg)
    report = json.loads((path / "report.json").read_text())
    typer.echo(markdown({SPEC if out is None else str(out): report}))
    typer.echo(json.dumps({"model": str(path), "met": report["met"]}))


def register(app: typer.Typer) -> None:
    app.add_typer(sft, name="sft")
