"""Does the simulator know the world that RL trains in? What its teaching taught it (docs/learning.md).

For a two-hop question ("In which city was the founder of Bregex Systems born?") the policy's second search needs
the first hop's answer, the bridge entity (the founder); a comparison needs each side's year. The simulator is told
the question and its final answer, not these: its useful documents for such a *bridge hop* name the real answer only
if it knows the world, as the paper's simulators know Wikipedia. `mini-world:simulator-base` saw each training
question's interactions once at most; RL against it found the bridge in 0-8% of useful searches where BM25 found it in
85-91%. `mini-world:simulator` is that base taught `teach_epochs` more epochs on every oracle query of the tiny
recipe's RL questions (`mini-world:pool`: N multi-hop and N single-hop training questions; zerosearch/sft/miniworld.py).

This benchmark measures, on the taught questions and on as many controls (never taught, the same kinds), over the
bridge hops, how often the simulator's useful documents name the hop's answer (`hop_answer`) and how often they hold
the final answer (`final_answer`, the shortcut), and over the queries that ask for the final answer and whose real
documents hold it, how often the useful documents hold it (`answer_hit`: taught bridge hops alone would unlearn it,
since their useful documents never hold the final answer), for
  a. the base (`before`);
  b. the taught simulator (`after`);
both decoded as the tiny recipe trains against it (temperature 0.7, top-p 0.9), 3 documents, each query SAMPLES
times. The taught and control questions are the taught simulator's (its build.json). Writes
benchmarks/results/simulator_knowledge.json.

    python benchmarks/simulator_knowledge.py [--simulator mini-world:simulator] [--base SPEC] [--samples 1]
        [--out runs/simulator_knowledge] [--results PATH]

(--base defaults to mini-world:simulator-base for the spec, to SIMULATOR/base for a `zerosearch sft miniworld
--out SIMULATOR` build.)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from zerosearch.errors import UserError

RESULTS = Path(__file__).parent / "results" / "simulator_knowledge.json"
GROUPS = {"taught": "questions", "control": "controls"}  # build.json's lists of question ids


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulator", default="mini-world:simulator", help="a taught simulator's model spec")
    parser.add_argument("--base", default=None, help="the simulator before its teaching (see above)")
    parser.add_argument("--samples", type=int, default=1, help="useful outputs drawn per query")
    parser.add_argument("--out", default="runs/simulator_knowledge", help="working directory: the interactions")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be >= 1")
    return args


def answer_queries(records: list[dict]) -> list[dict]:
    """The records that ask for the final answer and whose real documents hold it: the report card's useful hit."""
    from zerosearch.sft.judge import asks_final

    return [r for r in records if asks_final(r) and r.get("label") == "useful"]


def useful_texts(generator, records: list[dict], *, recipe, samples: int) -> list[tuple[dict, str]]:
    """(record, useful output) for each of `records`' queries asked `samples` times, decoded as the simulator was
    graded in its build (`recipe`: its SimulatorBuildConfig; the tiny recipe's decoding by default)."""
    from zerosearch.engines.base import SearchRequest
    from zerosearch.engines.simulator import SimulatorEngine
    from zerosearch.sft.miniworld import GRADE_BATCH

    decoding = dict(max_new_tokens=recipe.max_new_tokens, temperature=recipe.temperature, top_p=recipe.top_p)
    engine = SimulatorEngine(generator, "sft", seed=recipe.seed, **decoding)
    owners = [r for r in records for _ in range(samples)]
    requests = [
        SearchRequest(
            query=r["query"], k=recipe.k, question=r["question"], answers=list(r["golden_answers"]), mode="useful"
        )
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
    from zerosearch.sft.miniworld import bridge_hops

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
    from zerosearch.config import SimulatorBuildConfig
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model, resolve
    from zerosearch.sft.miniworld import BASE_SPEC, SPEC, by_question, interactions

    taught_dir = Path(resolve(args.simulator))
    base = args.base or (BASE_SPEC if args.simulator == SPEC else str(taught_dir / "base"))
    info_path = taught_dir / "build.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if "taught" not in info:
        raise UserError(f"{args.simulator}: not a taught simulator (no build.json naming its taught questions)")
    recipe = SimulatorBuildConfig(**info["recipe"])
    out = Path(args.out)
    records = by_question(interactions("train", 3 * recipe.k, out / "train.interactions.jsonl"))
    groups = {name: [r for q in info["taught"][ids] for r in records[q]] for name, ids in GROUPS.items()}

    seconds: dict[str, float] = {}
    result: dict = {}
    measure = dict(recipe=recipe, samples=args.samples)
    for when, spec in (("before", base), ("after", args.simulator)):
        start = time.perf_counter()
        generator = HFGenerator(*load_model(spec))
        result[when] = {name: knowledge(generator, rows, **measure) for name, rows in groups.items()}
        del generator
        seconds[f"measure_{when}"] = round(time.perf_counter() - start, 1)

    result = {
        "command": shlex.join(["python", "benchmarks/simulator_knowledge.py", *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "simulator": args.simulator,
        "base": base,
        "identity": info["identity"],
        "questions": recipe.teach_questions,
        "epochs": recipe.teach_epochs,
        "examples": info["taught"]["examples"],
        "sft_steps": info["fine_tune"]["steps"],
        "train_loss": info["fine_tune"]["train_loss"],
        "teach_seconds": info["seconds"],
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
