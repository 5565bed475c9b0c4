"""Does the simulator know the world that RL trains in, and can its fine-tuning teach it? (docs/learning.md)

For a two-hop question ("In which city was the founder of Bregex Systems born?") the policy's second search needs
the first hop's answer, the bridge entity (the founder); a comparison needs each side's year. The simulator is told
the question and its final answer, not these: its useful documents for such a *bridge hop* name the real answer only
if it knows the world, as the paper's simulators know Wikipedia. `mini-world:simulator` saw each training question's
interactions once at most; RL against it found the bridge in 0-8% of useful searches where BM25 found it in 85-91%
(learning.json's `engine_knowledge`).

This benchmark takes N multi-hop training questions (each bridge hop with both a useful and a noisy training
example) and N single-hop ones to teach, as many others as a control, and measures on each set, over the bridge
hops, how often the simulator's useful documents name the hop's answer (`hop_answer`) and how often they hold the
final answer (`final_answer`, the shortcut), and over the queries that ask for the final answer and whose real
documents hold it, how often the useful documents hold it (`answer_hit`: taught bridge hops alone would unlearn it,
since their useful documents never hold the final answer):
  a. the simulator as built;
  b. after EPOCHS more epochs of its own SFT on every oracle query of the taught questions (both modes side by side,
     the build's format: what the paper's simulator fine-tuning sees, repeated until it is remembered), saved to
     OUT/model;
both decoded as the tiny recipe trains against it (temperature 0.7, top-p 0.9), 3 documents, each query SAMPLES
times. Writes benchmarks/results/simulator_knowledge.json, and OUT/pool.jsonl: the taught questions, a training set
whose world the taught simulator knows (`--set data=OUT/pool.jsonl --set engine.simulator_model=OUT/model`).

    python benchmarks/simulator_knowledge.py [--simulator mini-world:simulator] [--questions 24] [--epochs 5]
        [--samples 1] [--train-layers N] [--out runs/simulator_knowledge] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import sys
import time
from pathlib import Path

from zerosearch.errors import UserError

RESULTS = Path(__file__).parent / "results" / "simulator_knowledge.json"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulator", default="mini-world:simulator", help="a fine-tuned simulator's model spec")
    parser.add_argument(
        "--questions", type=int, default=24, help="N: multi-hop and as many single-hop questions taught, 2N controls"
    )
    parser.add_argument("--epochs", type=int, default=5, help="SFT epochs over the taught questions' queries")
    parser.add_argument(
        "--train-layers", type=int, default=None, help="top blocks trained (default: the build recipe's, every block)"
    )
    parser.add_argument("--samples", type=int, default=1, help="useful outputs drawn per query")
    parser.add_argument("--out", default="runs/simulator_knowledge", help="working directory: data, the taught model")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for name in ("questions", "epochs", "samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    return args


def by_question(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(r["question_id"], []).append(r)
    return out


def bridge_hops(records: list[dict]) -> dict[str, list[dict]]:
    """{question id: its bridge hops' records}: the oracle queries whose own answer is not the final answer."""
    from zerosearch.sft.judge import asks_final

    return by_question([r for r in records if r.get("query_answers") and not asks_final(r)])


def answer_queries(records: list[dict]) -> list[dict]:
    """The records that ask for the final answer and whose real documents hold it: the report card's useful hit."""
    from zerosearch.sft.judge import asks_final

    return [r for r in records if asks_final(r) and r.get("label") == "useful"]


def useful_texts(generator, records: list[dict], *, k: int, samples: int, seed: int) -> list[tuple[dict, str]]:
    """(record, useful output) for each of `records`' queries asked `samples` times, decoded as the tiny recipe
    trains against the simulator."""
    from zerosearch.engines.base import SearchRequest
    from zerosearch.engines.simulator import SimulatorEngine
    from zerosearch.sft.miniworld import GRADE_BATCH, RECIPE

    decoding = dict(max_new_tokens=RECIPE.max_new_tokens, temperature=RECIPE.temperature, top_p=RECIPE.top_p)
    engine = SimulatorEngine(generator, "sft", seed=seed, **decoding)
    owners = [r for r in records for _ in range(samples)]
    requests = [
        SearchRequest(query=r["query"], k=k, question=r["question"], answers=list(r["golden_answers"]), mode="useful")
        for r in owners
    ]
    results = [
        docs for i in range(0, len(requests), GRADE_BATCH) for docs in engine.search(requests[i : i + GRADE_BATCH])
    ]
    return [(r, " ".join(d.text for d in docs)) for r, docs in zip(owners, results)]


def knowledge(generator, records: list[dict], **decoding) -> dict:
    """Over the bridge hops of `records`: the share of useful outputs that name the hop's answer and the share that
    hold the final answer (the shortcut); over their final-answer queries: the share that hold it (the useful hit,
    which teaching bridge hops alone would unlearn: their useful documents never hold the final answer)."""
    from zerosearch.rewards import contains_answer

    bridges = [r for rs in bridge_hops(records).values() for r in rs]
    hops = useful_texts(generator, bridges, **decoding)
    answers = useful_texts(generator, answer_queries(records), **decoding)

    def share(outputs: list[tuple[dict, str]], field: str) -> float | None:
        return sum(contains_answer(t, r[field]) for r, t in outputs) / len(outputs) if outputs else None

    return {
        "bridge_hops": {
            "outputs": len(hops),
            "hop_answer": share(hops, "query_answers"),
            "final_answer": share(hops, "golden_answers"),
        },
        "answer_queries": {"outputs": len(answers), "answer_hit": share(answers, "golden_answers")},
    }


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    from zerosearch.data import load_questions
    from zerosearch.data.formats import write_questions
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model, resolve
    from zerosearch.sft.build import build as build_examples
    from zerosearch.sft.finetune import finetune
    from zerosearch.sft.miniworld import RECIPE, interactions, paired, sft_config

    out = Path(args.out)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    k = RECIPE.k
    all_records = interactions("train", 3 * k, data / "train.interactions.jsonl")
    records = by_question(all_records)
    shape = dict(k=k, max_doc_words=RECIPE.max_doc_words, val_fraction=0.0, seed=RECIPE.seed, balance=0.0)
    pairs = by_question(paired(build_examples(all_records, per_document=True, **shape)[0]))  # useful, noisy, …
    paired_queries = {(e["question_id"], e["query"]) for es in pairs.values() for e in es}
    hops = bridge_hops(all_records)
    multi = [q for q, rs in sorted(hops.items()) if all((q, r["query"]) in paired_queries for r in rs)]
    single = sorted(set(pairs) - set(hops))
    if min(len(multi), len(single)) < 2 * args.questions:
        raise UserError(f"--questions {args.questions}: {len(multi)} multi-hop and {len(single)} single-hop questions")
    multi, single = (
        random.Random(0).sample(multi, 2 * args.questions),
        random.Random(1).sample(single, 2 * args.questions),
    )
    taught_ids = multi[: args.questions] + single[: args.questions]
    control_ids = multi[args.questions :] + single[args.questions :]
    taught = [r for q in taught_ids for r in records[q]]
    control = [r for q in control_ids for r in records[q]]
    examples = [e for q in taught_ids for e in pairs[q]]
    with (data / "train.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)
    chosen = set(taught_ids)
    write_questions([q for q in load_questions("mini-world:train") if q.id in chosen], out / "pool.jsonl", "train")

    seconds: dict[str, float] = {}
    result: dict = {}
    base = resolve(args.simulator)
    measure = dict(k=k, samples=args.samples, seed=RECIPE.seed)
    start = time.perf_counter()
    before = HFGenerator(*load_model(args.simulator))
    result["before"] = {
        "taught": knowledge(before, taught, **measure),
        "control": knowledge(before, control, **measure),
    }
    del before
    seconds["measure_before"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    steps = -(-len(examples) * args.epochs // RECIPE.batch_size)
    changes = {"model": str(base), "steps": steps}
    if args.train_layers is not None:
        changes["train_layers"] = args.train_layers
    sft = sft_config(RECIPE, data, out / "model", **changes)
    stats = finetune(sft, progress=False, log=lambda line: print(f"fine-tune: {line}", flush=True))
    shutil.rmtree(out / "model" / "checkpoints", ignore_errors=True)  # empty (save_every=0): the Trainer's output_dir
    seconds["fine_tune"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    after = HFGenerator(*load_model(str(out / "model")))
    result["after"] = {"taught": knowledge(after, taught, **measure), "control": knowledge(after, control, **measure)}
    seconds["measure_after"] = round(time.perf_counter() - start, 1)

    result = {
        "command": shlex.join(["python", "benchmarks/simulator_knowledge.py", *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "simulator": args.simulator,
        "questions": args.questions,
        "epochs": args.epochs,
        "examples": len(examples),
        "pool": str(out / "pool.jsonl"),
        "sft_steps": steps,
        "train_loss": stats.get("train_loss"),
        "seconds": seconds,
        **result,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("before", "after", "seconds")}, indent=2))
    return result


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(parse(argv), argv)
    except UserError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
