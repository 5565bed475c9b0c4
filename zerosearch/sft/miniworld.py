"""`mini-world:simulator`: a search simulator fine-tuned the paper's way on the mini-world (see docs/simulator.md).

The `zerosearch sft` stages, run end to end at toy scale:

1. collect: every oracle query of `mini-world:train` (the question and each hop's sub-question) against BM25
   over `mini-world:corpus`, the top 3k documents kept. No policy model is needed: the oracle queries are the
   ones a good searcher sends, and the mini-world has them;
2. judge: the rule judge, document by document: does it hold the query's answer (a hop's own answer for a hop's
   sub-question: a first hop's useful documents name the bridge entity, not the final answer);
3. build: SFT chat pairs in the released simulators' exact prompt format, both modes from each query (useful =
   its documents that hold the answer, then the next ones; noisy = its documents that do not), the two examples
   of a query side by side in one batch;
4. fine-tune: TRL's SFTTrainer (`sft train`), the top blocks of `smollm2-135m`;
5. grade: the report card on the oracle queries of `mini-world:test` (questions never trained on, sharing no
   fact with training), decoded as the tiny recipe trains against it (noisy outputs with the gold answers banned,
   as the engine does in training: `engine.simulator_ban_answers`); `report.json` beside the model.

Built once into the cache (a temp dir, then a rename: atomic), named by a hash of the recipe, the mini-world
version and the base model's identity, so that a changed recipe builds anew.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from zerosearch.config import SFTConfig, SimulatorBuildConfig, cache_dir, to_dict
from zerosearch.errors import UserError

SPEC = "mini-world:simulator"
VERSION = 3  # bump when the build's code changes what it makes (the recipe's fields are hashed already)
TARGETS = {  # issue 12: what a simulator must reach before RL can learn against it
    "useful_answer_hit": (">=", 0.85),
    "noisy_answer_leak": ("<=", 0.10),
    "format_validity": (">=", 0.95),
    "prompt_copy": ("<=", 0.02),
}
GRADE_BATCH = 24  # simulator requests per generation batch at grading
RECIPE = SimulatorBuildConfig()  # the recipe that the spec `mini-world:simulator` names


def progress(message: str) -> None:
    """One line per stage on stderr, terminal or not (a build takes minutes, often inside another command)."""
    print(f"[{SPEC}] {message}", file=sys.stderr, flush=True)


def key(cfg: SimulatorBuildConfig) -> str:
    from zerosearch.data.miniworld import VERSION as WORLD_VERSION
    from zerosearch.models import model_identity

    blob = {"version": VERSION, "world": WORLD_VERSION, "model": model_identity(cfg.model), "recipe": to_dict(cfg)}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


def identity(cfg: SimulatorBuildConfig | None = None) -> str:
    return f"{SPEC}@{key(cfg or RECIPE)}"


def meets(card: dict) -> dict[str, bool]:
    return {name: card[name] >= bound if op == ">=" else card[name] <= bound for name, (op, bound) in TARGETS.items()}


def interactions(split: str, k: int, path: Path) -> list[dict]:
    """The judged oracle interactions of `mini-world:<split>` with BM25 (written to `path` as `sft collect` does)."""
    from zerosearch.data import load_questions
    from zerosearch.engines.bm25 import BM25Engine
    from zerosearch.sft.collect import collect, read_records
    from zerosearch.sft.judge import RuleJudge, judge

    engine = BM25Engine("mini-world:corpus")
    collect(load_questions(f"mini-world:{split}"), engine, path, source="oracle", k=k, batch_size=512, progress=False)
    records = [r for r in read_records(path) if r.get("query") and r.get("documents")]
    judge(records, [RuleJudge()])
    return records


def paired(examples: list[dict]) -> list[dict]:
    """The queries that have both modes, each as its useful example then its noisy one, in the examples' (shuffled)
    order. The two prompts differ in the mode's words only, and so do their targets in the answer: side by side in
    a batch, they teach the mode where a random order spends the few CPU steps on the mini-world's style."""
    by_query: dict[tuple, dict] = {}
    for e in examples:
        by_query.setdefault((e["question_id"], e["query"]), {})[e["mode"]] = e
    return [pair[m] for pair in by_query.values() if len(pair) == 2 for m in ("useful", "noisy")]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def sft_config(cfg: SimulatorBuildConfig, data: Path, out: Path, **changes) -> SFTConfig:
    """The recipe's fine-tuning of `cfg.model` on `data`/train.jsonl into `out` (`changes` override its fields)."""
    fields = dict(
        model=cfg.model,
        data=str(data),
        out=str(out),
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        train_layers=cfg.train_layers,
        save_every=0,  # minutes of training: a rerun starts over rather than write 1 GB of optimizer state
        eval_every=0,
        shuffle=False,  # `paired` order: a query's useful and noisy examples in one batch
        seed=cfg.seed,
    )
    return SFTConfig(**(fields | changes))


def build(out: Path, cfg: SimulatorBuildConfig, log: Callable[[str], None] = progress) -> dict:
    """Collect, judge, build, fine-tune and grade into `out`: the model at its top, `report.json` (the report card
    with the targets) and `build.json` (recipe, data statistics, seconds per stage) beside it, `data/` below."""
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model
    from zerosearch.sft.build import build as build_examples
    from zerosearch.sft.finetune import finetune
    from zerosearch.sft.grade import grade, load_items

    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    seconds, start = {}, time.perf_counter()

    def stage(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        seconds[name] = round(now - start, 1)
        start = now

    log("1/5 collect: oracle queries of mini-world:train and mini-world:test, BM25 over mini-world:corpus")
    # 3k documents per query, so that most queries have k without the answer: a noisy example beside the useful one
    train_records = interactions("train", 3 * cfg.k, data / "train.interactions.jsonl")
    test_records = interactions("test", 3 * cfg.k, data / "test.interactions.jsonl")
    stage("collect_and_judge")
    useful = sum(r["label"] == "useful" for r in train_records)
    log(f"2/5 judge (rule): the results of {useful} of {len(train_records)} train queries hold the answer")

    shape = dict(k=cfg.k, max_doc_words=cfg.max_doc_words, val_fraction=0.0, seed=cfg.seed)
    # `paired` balances the modes exactly; a balance before it would drop one mode of some queries, orphaning the other
    train, _, train_stats = build_examples(train_records, balance=0.0, per_document=True, **shape)
    train = paired(train)[: cfg.steps * cfg.batch_size]  # each example is trained on once: no more are needed
    heldout, _, heldout_stats = build_examples(test_records, balance=0.0, **shape)
    _write_jsonl(data / "train.jsonl", train)
    _write_jsonl(data / "heldout.jsonl", heldout)
    stage("build")
    log(f"3/5 build: {len(train)} training examples ({cfg.k} documents of <= {cfg.max_doc_words} words)")

    log(f"4/5 fine-tune {cfg.model}: {cfg.steps} steps of {cfg.batch_size}, lr {cfg.lr}, top {cfg.train_layers} blocks")
    sft = sft_config(cfg, data, out)
    train_stats_sft = finetune(sft, progress=False, log=lambda line: log(f"4/5 fine-tune: {line}"))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # empty (save_every=0): the Trainer's output_dir
    stage("fine_tune")

    items = load_items(data / "heldout.jsonl", cfg.grade_queries)
    log(f"5/5 grade: {len(items)} held-out mini-world:test queries x 2 modes, temperature {cfg.temperature}")
    card = grade(
        HFGenerator(*load_model(str(out))),
        "sft",
        items,
        k=cfg.k,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=GRADE_BATCH,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=cfg.seed,
        ban_answers=True,  # as the tiny recipe trains against it
    )
    stage("grade")
    met = meets(card)
    report = {"simulator": SPEC, "targets": {n: f"{op} {b}" for n, (op, b) in TARGETS.items()}, "met": met} | card
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    info = {
        "identity": identity(cfg),
        "recipe": to_dict(cfg),
        "seconds": seconds | {"total": round(sum(seconds.values()), 1)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": _load_average()},
        "train_data": train_stats | {"trained_on": len(train)},
        "heldout_data": heldout_stats,
        "fine_tune": {k: train_stats_sft[k] for k in ("steps", "train_loss", "loss_history", "trainable_parameters")},
    }
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    summary = ", ".join(f"{n} {card[n]:.3f}{'' if ok else ' (target missed)'}" for n, ok in met.items())
    log(f"done in {info['seconds']['total']:.0f} s: {summary}")
    return report


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def build_atomically(final: Path, cfg: SimulatorBuildConfig, log: Callable[[str], None] = progress) -> Path:
    """Build into a temp dir beside `final`, then rename it there; a concurrent builder that finished first wins."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(tmp, cfg, log)
        try:
            os.replace(tmp, final)
        except OSError:
            if not complete(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def complete(path: Path) -> bool:
    return (path / "report.json").is_file() and (path / "config.json").is_file()


def cached(cfg: SimulatorBuildConfig | None = None) -> Path:
    """The built simulator's directory in the cache, built on first use (minutes: see docs/simulator.md)."""
    cfg = cfg or RECIPE
    final = cache_dir() / "models" / f"mini-world-simulator-{key(cfg)}"
    if complete(final):
        return final
    progress(f"not built yet: building it once into {final} (minutes on a GPU, about an hour on 2 CPU cores)")
    return build_atomically(final, cfg)


def check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty: choose a new --out (a build never overwrites)")
