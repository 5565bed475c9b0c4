"""`mini-world:simulator`: a search simulator fine-tuned the paper's way on the mini-world (see docs/simulator.md).

The `zerosearch sft` stages, run end to end at toy scale, build `mini-world:simulator-base`:

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

Then `mini-world:simulator` is the base taught the questions that RL will ask: the paper's simulators know the
world of their questions (Wikipedia, from pre-training); a 135M model knows only what its fine-tuning showed it,
once per query, which is not enough for a first hop's answer to be remembered (docs/learning.md). So the teaching
continues the same fine-tuning for `teach_epochs` epochs over every oracle query of `teach_questions` multi-hop
and as many single-hop training questions, grades it as in 5, and keeps those questions as `pool.jsonl`: the tiny
recipe's RL questions, `mini-world:pool`.

Each is built once into the cache (a temp dir, then a rename: atomic), named by a hash of what it depends on (the
recipe, the mini-world version, the base model's identity), so that a changed recipe builds anew and a changed
teaching reuses the base.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from zerosearch.config import SFTConfig, SimulatorBuildConfig, cache_dir, to_dict
from zerosearch.errors import UserError

SPEC = "mini-world:simulator"
BASE_SPEC = "mini-world:simulator-base"
VERSION = 3  # bump when the build's code changes what it makes (the recipe's fields are hashed already)
TEACH_FIELDS = ("teach_questions", "teach_epochs")  # the teaching's own: a change reuses the base
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


def _hash(blob: dict) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


def base_key(cfg: SimulatorBuildConfig) -> str:
    from zerosearch.data.miniworld import VERSION as WORLD_VERSION
    from zerosearch.models import model_identity

    recipe = {name: value for name, value in to_dict(cfg).items() if name not in TEACH_FIELDS}
    return _hash({"version": VERSION, "world": WORLD_VERSION, "model": model_identity(cfg.model), "recipe": recipe})


def key(cfg: SimulatorBuildConfig) -> str:
    return _hash({"base": base_key(cfg), **{name: getattr(cfg, name) for name in TEACH_FIELDS}})


def pool_key(cfg: SimulatorBuildConfig) -> str:
    """What the taught questions depend on: not the model (BM25 and the rule judge choose them)."""
    from zerosearch.data.miniworld import VERSION as WORLD_VERSION

    fields = ("k", "max_doc_words", "seed", "teach_questions")
    return _hash({"version": VERSION, "world": WORLD_VERSION, **{name: getattr(cfg, name) for name in fields}})


def identity(cfg: SimulatorBuildConfig | None = None, spec: str = SPEC) -> str:
    cfg = cfg or RECIPE
    return f"{spec}@{base_key(cfg) if spec == BASE_SPEC else key(cfg)}"


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


def by_question(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["question_id"], []).append(r)
    return out


def bridge_hops(records: list[dict]) -> dict[str, list[dict]]:
    """{question id: its bridge hops' records}: the oracle queries whose own answer is not the final answer (a
    two-hop question's first hop, a comparison's two sides). The simulator is told the final answer, not theirs."""
    from zerosearch.sft.judge import asks_final

    return by_question([r for r in records if r.get("query_answers") and not asks_final(r)])


class Teaching:
    """The questions that `mini-world:simulator` is taught, and as many controls (never taught, the same kinds):
    `teach_questions` multi-hop training questions whose every bridge hop has both modes' examples (else the hop's
    answer could not be taught), and as many single-hop ones, drawn with fixed seeds. `records`: the judged train
    interactions; `examples`: their paired SFT examples by question."""

    def __init__(self, cfg: SimulatorBuildConfig, data: Path):
        from zerosearch.sft.build import build as build_examples

        data.mkdir(parents=True, exist_ok=True)
        self.records = interactions("train", 3 * cfg.k, data / "train.interactions.jsonl")
        shape = dict(k=cfg.k, max_doc_words=cfg.max_doc_words, val_fraction=0.0, seed=cfg.seed, balance=0.0)
        self.examples = by_question(paired(build_examples(self.records, per_document=True, **shape)[0]))
        paired_queries = {(e["question_id"], e["query"]) for es in self.examples.values() for e in es}
        hops = bridge_hops(self.records)
        multi = [q for q, rs in sorted(hops.items()) if all((q, r["query"]) in paired_queries for r in rs)]
        single = sorted(set(self.examples) - set(hops))
        n = cfg.teach_questions
        if min(len(multi), len(single)) < 2 * n:
            raise UserError(
                f"simulator.teach_questions={n}: the mini-world has {len(multi)} multi-hop and {len(single)} "
                f"single-hop training questions to draw {n} taught and {n} controls of each from"
            )
        multi, single = random.Random(0).sample(multi, 2 * n), random.Random(1).sample(single, 2 * n)
        self.taught = multi[:n] + single[:n]
        self.controls = multi[n:] + single[n:]

    def write_pool(self, path: Path) -> Path:
        """The taught questions, as a question file (the mini-world's fields, `meta` with type and hops)."""
        from zerosearch.data import load_questions
        from zerosearch.data.formats import write_questions

        chosen = set(self.taught)
        write_questions([q for q in load_questions("mini-world:train") if q.id in chosen], path, "train")
        return path


def pool_file(cfg: SimulatorBuildConfig | None = None) -> Path:
    """`mini-world:pool`: the questions `mini-world:simulator` is taught (seconds to choose: BM25 and the rule judge,
    no model), cached."""
    cfg = cfg or RECIPE
    final = cache_dir() / "mini-world" / f"pool-{pool_key(cfg)}.jsonl"
    if not final.is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=final.parent, prefix=".pool-") as tmp:
            os.replace(Teaching(cfg, Path(tmp)).write_pool(Path(tmp) / final.name), final)
    return final


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


class Stages:
    """Seconds per stage of a build."""

    def __init__(self):
        self.seconds, self.start = {}, time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.start, 1)
        self.start = now

    def total(self) -> dict:
        return self.seconds | {"total": round(sum(self.seconds.values()), 1)}


def fine_tune(sft: SFTConfig, out: Path, log: Callable[[str], None]) -> dict:
    from zerosearch.sft.finetune import finetune

    stats = finetune(sft, progress=False, log=log)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # empty (save_every=0): the Trainer's output_dir
    return {k: stats[k] for k in ("steps", "train_loss", "loss_history", "trainable_parameters")}


def grade_into(out: Path, heldout: Path, cfg: SimulatorBuildConfig, spec: str) -> dict:
    """The report card of the model in `out` on `cfg.grade_queries` queries of `heldout`, with the targets, written
    to `out`/report.json."""
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model
    from zerosearch.sft.grade import grade, load_items

    card = grade(
        HFGenerator(*load_model(str(out))),
        "sft",
        load_items(heldout, cfg.grade_queries),
        k=cfg.k,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=GRADE_BATCH,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=cfg.seed,
        ban_answers=True,  # as the tiny recipe trains against it
    )
    met = meets(card)
    report = {"simulator": spec, "targets": {n: f"{op} {b}" for n, (op, b) in TARGETS.items()}, "met": met} | card
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def summary(report: dict) -> str:
    return ", ".join(f"{n} {report[n]:.3f}{'' if ok else ' (target missed)'}" for n, ok in report["met"].items())


def _write_info(out: Path, info: dict) -> None:
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": _load_average()}
    (out / "build.json").write_text(json.dumps(info | {"machine": machine}, indent=2) + "\n")


def build_base(out: Path, cfg: SimulatorBuildConfig, log: Callable[[str], None] = progress) -> dict:
    """Collect, judge, build, fine-tune and grade `mini-world:simulator-base` into `out`: the model at its top,
    `report.json` (the report card with the targets) and `build.json` (recipe, data statistics, seconds per stage)
    beside it, `data/` below."""
    from zerosearch.sft.build import build as build_examples

    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    stages = Stages()

    log("1/5 collect: oracle queries of mini-world:train and mini-world:test, BM25 over mini-world:corpus")
    # 3k documents per query, so that most queries have k without the answer: a noisy example beside the useful one
    train_records = interactions("train", 3 * cfg.k, data / "train.interactions.jsonl")
    test_records = interactions("test", 3 * cfg.k, data / "test.interactions.jsonl")
    stages.done("collect_and_judge")
    useful = sum(r["label"] == "useful" for r in train_records)
    log(f"2/5 judge (rule): the results of {useful} of {len(train_records)} train queries hold the answer")

    shape = dict(k=cfg.k, max_doc_words=cfg.max_doc_words, val_fraction=0.0, seed=cfg.seed)
    # `paired` balances the modes exactly; a balance before it would drop one mode of some queries, orphaning the other
    train, _, train_stats = build_examples(train_records, balance=0.0, per_document=True, **shape)
    train = paired(train)[: cfg.steps * cfg.batch_size]  # each example is trained on once: no more are needed
    heldout, _, heldout_stats = build_examples(test_records, balance=0.0, **shape)
    _write_jsonl(data / "train.jsonl", train)
    _write_jsonl(data / "heldout.jsonl", heldout)
    stages.done("build")
    log(f"3/5 build: {len(train)} training examples ({cfg.k} documents of <= {cfg.max_doc_words} words)")

    log(f"4/5 fine-tune {cfg.model}: {cfg.steps} steps of {cfg.batch_size}, lr {cfg.lr}, top {cfg.train_layers} blocks")
    tuned = fine_tune(sft_config(cfg, data, out), out, lambda line: log(f"4/5 fine-tune: {line}"))
    stages.done("fine_tune")

    log(f"5/5 grade: {cfg.grade_queries} held-out mini-world:test queries x 2 modes, temperature {cfg.temperature}")
    report = grade_into(out, data / "heldout.jsonl", cfg, BASE_SPEC)
    stages.done("grade")
    info = {
        "identity": identity(cfg, BASE_SPEC),
        "recipe": to_dict(cfg),
        "seconds": stages.total(),
        "train_data": train_stats | {"trained_on": len(train)},
        "heldout_data": heldout_stats,
        "fine_tune": tuned,
    }
    _write_info(out, info)
    log(f"base done in {info['seconds']['total']:.0f} s: {summary(report)}")
    return report


def teach(out: Path, base: Path, cfg: SimulatorBuildConfig, log: Callable[[str], None] = progress) -> dict:
    """`mini-world:simulator` into `out`: the base in `base` fine-tuned `teach_epochs` more epochs on every oracle
    query of the taught questions (`Teaching`), graded as the base was; `pool.jsonl` (the taught questions) beside
    the model, with `report.json` and `build.json`; `data/` the SFT set and the held-out set (the base's)."""
    data = out / "data"
    stages = Stages()
    teaching = Teaching(cfg, data)
    examples = [e for q in teaching.taught for e in teaching.examples[q]]
    _write_jsonl(data / "train.jsonl", examples)
    shutil.copyfile(base / "data" / "heldout.jsonl", data / "heldout.jsonl")  # graded on the base's queries
    teaching.write_pool(out / "pool.jsonl")
    stages.done("choose")
    steps = -(-len(examples) * cfg.teach_epochs // cfg.batch_size)
    log(
        f"teach 1/2: {len(teaching.taught)} training questions ({len(examples)} examples) x {cfg.teach_epochs} "
        f"epochs = {steps} steps of {cfg.batch_size}"
    )
    tuned = fine_tune(
        sft_config(cfg, data, out, model=str(base), steps=steps), out, lambda line: log(f"teach 1/2: {line}")
    )
    stages.done("fine_tune")

    log(f"teach 2/2 grade: {cfg.grade_queries} held-out mini-world:test queries x 2 modes")
    report = grade_into(out, data / "heldout.jsonl", cfg, SPEC)
    stages.done("grade")
    info = {
        "identity": identity(cfg),
        "base": identity(cfg, BASE_SPEC),
        "recipe": to_dict(cfg),
        "seconds": stages.total(),
        "taught": {"questions": teaching.taught, "controls": teaching.controls, "examples": len(examples)},
        "fine_tune": tuned,
    }
    _write_info(out, info)
    log(f"done in {info['seconds']['total']:.0f} s: {summary(report)}")
    return report


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def build_atomically(final: Path, make: Callable[[Path], object]) -> Path:
    """`make` into a temp dir beside `final`, then renamed there; a concurrent builder that finished first wins."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        make(tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not complete(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def build(out: Path, cfg: SimulatorBuildConfig) -> Path:
    """Both into the new directory `out`: the base in `out`/base, the taught simulator at the top."""
    build_base(out / "base", cfg)
    teach(out, out / "base", cfg)
    return out


def complete(path: Path) -> bool:
    return (path / "report.json").is_file() and (path / "config.json").is_file()


def cached(cfg: SimulatorBuildConfig | None = None, spec: str = SPEC) -> Path:
    """The directory of `spec` (`mini-world:simulator` or `mini-world:simulator-base`) in the cache, built on first
    use (the base: about 40 minutes on 2 CPU cores, its teaching 30 more; see docs/simulator.md)."""
    cfg = cfg or RECIPE
    models = cache_dir() / "models"
    base = models / f"mini-world-simulator-base-{base_key(cfg)}"
    if not complete(base):
        progress(f"{BASE_SPEC} not built yet: building it once into {base} (about 40 minutes on 2 CPU cores)")
        build_atomically(base, lambda tmp: build_base(tmp, cfg))
    if spec == BASE_SPEC:
        return base
    final = models / f"mini-world-simulator-{key(cfg)}"
    if not complete(final):
        progress(f"not taught yet: teaching {BASE_SPEC} into {final} (about 30 minutes on 2 CPU cores)")
        build_atomically(final, lambda tmp: teach(tmp, base, cfg))
    return final


def check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty: choose a new --out (a build never overwrites)")
