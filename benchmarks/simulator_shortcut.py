"""Does the simulator reward the policy's bad queries? Replays the queries an RL run actually sent in useful mode
(its trajectories) to simulators and to BM25, and counts how often each simulator writes the gold answer:

- shortcut (lower is better): over the queries whose real top-k documents (BM25, mini-world corpus) do not hold the
  answer (a first hop, a wrong entity, a query that lost its names), the simulator's useful documents hold it. The
  simulator is told the answer; writing it wherever it is asked rewards a search that a real engine would not;
- grounded hit (higher is better): over the queries whose real documents hold it, the simulator's do too;
- discrimination = grounded hit − shortcut: how much more often a query that finds the answer is rewarded than
  one that does not, the signal that RL against the simulator learns from (BM25 itself: 1 by definition).

The report card grades the oracle queries of held-out questions; these are the queries RL sends, of the training
questions it trains on. Writes benchmarks/results/simulator_shortcut.json.

    python benchmarks/simulator_shortcut.py --trajectories runs/learning2/sim/trajectories \
        [--simulator mini-world:simulator ...] [--per-class 120] [--config tiny] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shlex
import sys
import time
from pathlib import Path

from zerosearch.config import TrainConfig, load_config
from zerosearch.engines import make_engine
from zerosearch.engines.base import SearchRequest
from zerosearch.engines.bm25 import BM25Engine
from zerosearch.rewards import contains_answer, normalize_answer
from zerosearch.sft.judge import documents_text

RESULTS = Path(__file__).parent / "results" / "simulator_shortcut.json"
BATCH = 24


def holds_answer(documents, answers: list[str]) -> bool:
    return contains_answer(documents_text([d.to_dict() for d in documents]), answers)


def policy_queries(trajectories: Path) -> list[dict]:
    """The distinct (question, query) pairs searched in useful mode, with the question's gold answers; queries that
    spell an answer themselves are left out (any on-topic document would hold it)."""
    seen, out = set(), []
    for path in sorted(trajectories.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for search in row.get("searches", []):
                key = (row["question"], normalize_answer(search["query"]))
                if search["mode"] != "useful" or key in seen or contains_answer(search["query"], row["golden_answers"]):
                    continue
                seen.add(key)
                out.append({"question": row["question"], "answers": row["golden_answers"], "query": search["query"]})
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=Path, required=True, help="an RL run's trajectories/ directory")
    parser.add_argument("--simulator", action="append", help="model spec(s) (default: the recipe's simulator)")
    parser.add_argument("--per-class", type=int, default=120, help="queries sampled with / without a real answer")
    parser.add_argument("--config", default="tiny", help="the recipe whose engine section decodes the simulator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.per_class < 1:
        parser.error("--per-class must be >= 1")
    if not args.trajectories.is_dir():
        parser.error(f"--trajectories {args.trajectories}: not a directory")
    cfg = load_config(TrainConfig, args.config)
    k = cfg.engine.k

    queries = policy_queries(args.trajectories)
    bm25 = BM25Engine(cfg.engine.corpus)
    real = bm25.search([SearchRequest(q["query"], k) for q in queries])
    for q, docs in zip(queries, real, strict=True):
        q["real_holds"] = holds_answer(docs, q["answers"])
    rng = random.Random(args.seed)
    sample = []
    for holds in (True, False):
        group = [q for q in queries if q["real_holds"] is holds]
        if not group:
            parser.error(
                f"{args.trajectories}: no useful-mode query whose real documents {('lack', 'hold')[holds]} the answer"
            )
        sample += rng.sample(group, min(args.per_class, len(group)))

    result = {
        "what": __doc__.split("\n\n")[0],
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command": "python " + shlex.join(["benchmarks/simulator_shortcut.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "trajectories": str(args.trajectories),
        "policy_queries": len(queries),
        "real_holds_answer": sum(q["real_holds"] for q in queries),
        "sampled": {
            "real_holds": sum(q["real_holds"] for q in sample),
            "real_lacks": sum(not q["real_holds"] for q in sample),
        },
        "simulators": {},
    }
    for spec in args.simulator or [cfg.engine.simulator_model]:
        engine_cfg = load_config(
            TrainConfig, args.config, [f"engine.simulator_model={spec}", "engine.cache=off"]
        ).engine
        engine = make_engine(engine_cfg, seed=args.seed)
        requests = [SearchRequest(q["query"], k, q["question"], list(q["answers"]), "useful") for q in sample]
        holds = []
        for start in range(0, len(requests), BATCH):
            for q, docs in zip(sample[start : start + BATCH], engine.search(requests[start : start + BATCH])):
                holds.append((q["real_holds"], holds_answer(docs, q["answers"])))
            print(f"{spec}: {len(holds)}/{len(requests)} queries", file=sys.stderr, flush=True)
        lacks = [h for r, h in holds if not r]
        has = [h for r, h in holds if r]
        card = {"shortcut": sum(lacks) / len(lacks), "grounded_hit": sum(has) / len(has)}
        result["simulators"][spec] = card | {"discrimination": card["grounded_hit"] - card["shortcut"]}
        print(spec, result["simulators"][spec], flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
