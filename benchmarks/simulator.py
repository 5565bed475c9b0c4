"""The search simulator on this machine: documents/s in-process (transformers, fp32, and bf16:
`engine.simulator_dtype`) vs behind llama.cpp's OpenAI-compatible server (`zerosearch serve-model`, the same
weights exported to GGUF), at batch 1, 8 and 32; and the report card of each on the same held-out queries, so that
the speed-up is not bought with quality (issue 17).

A batch is one `engine.search` call of that many queries (half useful, half noisy), as the trainer makes one per
turn; the server decodes one request at a time, so its documents/s hardly depends on the batch. Neither side bans
answers (a server cannot; the card of the fine-tuned simulator shows it does not need to). Writes
benchmarks/results/simulator_throughput.json.

    python benchmarks/simulator.py [--model mini-world:simulator] [--quant Q8_0] [--batches 1 8 32] [--queries 32]
        [--grade 48] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx

from zerosearch.config import SimulatorBuildConfig
from zerosearch.engines.base import SearchRequest
from zerosearch.engines.simulator import SimulatorEngine
from zerosearch.generation.hf import HFGenerator
from zerosearch.generation.openai import OpenAIGenerator
from zerosearch.models import BUILT, load_model
from zerosearch.serve.app import free_port
from zerosearch.sft.grade import grade, load_items

RESULTS = Path(__file__).parent / "results" / "simulator_throughput.json"
CARD = ("useful_answer_hit", "noisy_answer_leak", "format_validity", "prompt_copy", "tokens_per_s")


def requests_for(items: list[dict], n: int, k: int) -> list[SearchRequest]:
    items = (items * (n // len(items) + 1))[:n]
    return [
        SearchRequest(it["query"], k, it["question"], list(it["golden_answers"]), ("useful", "noisy")[i % 2])
        for i, it in enumerate(items)
    ]


def throughput(engine: SimulatorEngine, requests: list[SearchRequest], batch: int) -> dict:
    engine.search(requests[:1])  # warm-up: first-call allocations and caches are not what training waits for
    tokens0 = engine.meter.completion_tokens
    start = time.perf_counter()
    docs = sum(len(d) for i in range(0, len(requests), batch) for d in engine.search(requests[i : i + batch]))
    seconds = time.perf_counter() - start
    tokens = engine.meter.completion_tokens - tokens0
    return {"batch": batch, "documents_per_s": docs / seconds, "tokens_per_s": tokens / seconds, "seconds": seconds}


def start_server(model: str, quant: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "zerosearch", "serve-model", "--model", model, "--quant", quant, "--port", str(port)]
    server = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 900  # the first use exports the GGUF
    while time.time() < deadline:
        if server.poll() is not None:
            sys.exit(f"`{shlex.join(cmd)}` exited with {server.returncode}")
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.kill()
    sys.exit(f"`{shlex.join(cmd)}` did not answer within 15 minutes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=BUILT[0])
    ap.add_argument("--data", help="held-out examples (default: those the built simulator was graded on)")
    ap.add_argument("--quant", default="Q8_0")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--queries", type=int, default=32, help="queries timed per batch size")
    ap.add_argument("--grade", type=int, default=48, help="held-out queries of each report card (0: no card)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    recipe = SimulatorBuildConfig()
    if args.data is None and args.model not in BUILT:
        ap.error(f"--data is needed for a model other than {' or '.join(BUILT)}")
    if args.data is None:
        from zerosearch.sft.miniworld import cached

        args.data = str(cached(spec=args.model) / "data" / "heldout.jsonl")
    items = load_items(args.data)
    requests = requests_for(items, args.queries, recipe.k)
    sampling = dict(temperature=recipe.temperature, top_p=recipe.top_p, max_new_tokens=recipe.max_new_tokens)
    cards = dict(k=recipe.k, batch_size=8, seed=0, **sampling)

    def measure(generator) -> dict:
        engine = SimulatorEngine(generator, "sft", seed=0, **sampling)
        out = {"throughput": [throughput(engine, requests, b) for b in args.batches]}
        if args.grade:
            card = grade(generator, "sft", items[: args.grade], **cards)
            out["report_card"] = {name: card[name] for name in CARD}
        print(json.dumps(out), flush=True)
        return out

    print(f"in-process (transformers, fp32, {os.cpu_count()} cores)", flush=True)
    in_process = measure(HFGenerator(*load_model(args.model, device="cpu")))
    print("in-process, bf16 weights", flush=True)
    in_process_bf16 = measure(HFGenerator(*load_model(args.model, dtype="bf16", device="cpu")))
    server, url = start_server(args.model, args.quant)
    try:
        print(f"llama.cpp server ({args.quant}) at {url}", flush=True)
        served = measure(OpenAIGenerator(url, args.model, tokenizer_spec=args.model, logprobs=False))
    finally:
        server.terminate()
        server.wait(timeout=30)

    best = {
        name: max(r["documents_per_s"] for r in side["throughput"])
        for name, side in (("in_process", in_process), ("in_process_bf16", in_process_bf16), ("server", served))
    }
    result = {
        "machine": {"uname": " ".join(platform.uname()), "nproc": os.cpu_count(), "python": platform.python_version()},
        "command": shlex.join(["python", "benchmarks/simulator.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "model": args.model,
        "quant": args.quant,
        "sampling": sampling,
        "k": recipe.k,
        "goal": {"server_over_in_process": ">= 3 (best documents/s of each)"},
        "server_over_in_process": best["server"] / best["in_process"],
        "bf16_over_fp32": best["in_process_bf16"] / best["in_process"],
        "in_process": in_process,
        "in_process_bf16": in_process_bf16,
        "server": served,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"documents/s, best batch: in-process {best['in_process']:.2f}, in-process bf16 "
        f"{best['in_process_bf16']:.2f} (x{result['bf16_over_fp32']:.2f}), llama.cpp {best['server']:.2f} "
        f"(x{result['server_over_in_process']:.2f}); {args.results}"
    )


if __name__ == "__main__":
    main()
