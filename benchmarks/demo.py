"""`zerosearch demo` against its bars: run it in a child process, timed, with its peak RSS, and read what its table
and its simulator's report card show (docs/learning.md). Goals: ≤ 15 minutes with the simulator cached, ≤ 20 on a
fresh cache (`--fresh-cache`: the mini-world and the simulator are built first), peak RSS ≤ 4 GiB, ≥ 50 held-out
questions with trained EM ≥ warm-started EM, and a report card that meets its targets. Writes
benchmarks/results/demo.json; the demo's own output goes to OUT/demo.log.

    python benchmarks/demo.py [--out runs/demo-bench] [--fresh-cache] [--results PATH] [-- DEMO ARGS ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "demo.json"
GOALS = {"minutes_cached": 15, "minutes_fresh": 20, "peak_rss_gib": 4, "n_eval": 50}
CARD = ("useful_answer_hit", "noisy_answer_leak", "format_validity", "prompt_copy")


def run_demo(out: Path, demo_args: list[str], env: dict) -> tuple[float, float]:
    """(minutes, peak RSS GiB) of `zerosearch demo --out OUT` in a child process, its output teed to OUT/demo.log."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "zerosearch", "demo", "--out", str(out), *demo_args]
    start = time.perf_counter()
    with (out / "demo.log").open("w", encoding="utf-8") as log:
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in child.stdout:
            print(line, end="", flush=True)
            log.write(line)
    if child.wait():
        sys.exit(f"error: the demo failed (exit code {child.returncode}), see {out / 'demo.log'}")
    minutes = (time.perf_counter() - start) / 60
    return minutes, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/demo-bench"), help="the demo's --out (emptied first)")
    parser.add_argument("--fresh-cache", action="store_true", help="an empty ZEROSEARCH_CACHE: everything is built")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("demo_args", nargs="*", help="after --: arguments of `zerosearch demo` (e.g. --set k=v)")
    args = parser.parse_args(argv)

    # A rerun into the same --out would reuse its warm start and run: it starts empty, and only a directory this
    # benchmark wrote (its demo.log) is emptied, never another.
    if args.out.exists() and any(args.out.iterdir()) and not (args.out / "demo.log").exists():
        sys.exit(f"error: {args.out} is not empty and not a demo benchmark's output: choose another --out")
    shutil.rmtree(args.out, ignore_errors=True)
    env = dict(os.environ)
    fresh = tempfile.TemporaryDirectory(prefix="zerosearch-cache-") if args.fresh_cache else contextlib.nullcontext()
    with fresh as cache:
        if cache:
            env["ZEROSEARCH_CACHE"] = cache
        minutes, peak = run_demo(args.out, args.demo_args, env)

    methods = json.loads((args.out / "eval" / "results.json").read_text())["methods"]
    em = {name: m["average"]["em"]["mean"] for name, m in methods.items()}
    n_eval = methods["trained"]["average"]["n"]
    card = json.loads((args.out / "simulator" / "report.json").read_text())
    goal_minutes = GOALS["minutes_fresh" if args.fresh_cache else "minutes_cached"]
    met = {
        "minutes": minutes <= goal_minutes,
        "peak_rss_gib": peak <= GOALS["peak_rss_gib"],
        "n_eval": n_eval >= GOALS["n_eval"],
        "trained_ge_warm": "warm-started" in em and em["trained"] >= em["warm-started"],
        "report_card": bool(card.get("met")) and all(card["met"].values()),  # None: no card (another engine)
    }
    result = {
        "machine": {"uname": " ".join(platform.uname()), "nproc": os.cpu_count(), "python": platform.python_version()},
        "command": shlex.join(["python", "benchmarks/demo.py", *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cache": "fresh" if args.fresh_cache else "as found (the simulator built once before)",
        "goals": {"minutes": f"<= {goal_minutes}", "peak_rss_gib": f"<= {GOALS['peak_rss_gib']}"}
        | {"n_eval": f">= {GOALS['n_eval']}", "trained_ge_warm": "trained EM >= warm-started EM"},
        "minutes": round(minutes, 2),
        "peak_rss_gib": round(peak, 2),
        "n_eval": n_eval,
        "em": em,
        "report_card": {k: card.get(k) for k in CARD},
        "met": met,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("minutes", "peak_rss_gib", "n_eval", "em", "met")}, indent=2))
    return result


if __name__ == "__main__":
    main()
