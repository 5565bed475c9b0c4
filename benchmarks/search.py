"""Search benchmarks (issue 5): bm25s throughput, dynamic batching of the simulator server, cache-hit
latency, and a load test of the bm25 server. Prints figures and side-by-side ratios; asserts nothing.

    python benchmarks/search.py                # all four
    python benchmarks/search.py --only load    # one of: bm25, simulator, cache, load
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from zerosearch.engines.base import SearchRequest
from zerosearch.serve.app import free_port

WORDS = [f"w{i}" for i in range(30000)]


def synthetic_corpus(path: Path, n: int, seed: int = 0) -> Path:
    """`n` passages of 40 words drawn Zipf-like from a 30k vocabulary (roughly a Wikipedia passage)."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    with open(path, "w") as f:
        for i in range(n):
            words = rng.choices(WORDS, weights, k=42)
            f.write(json.dumps({"id": str(i), "contents": " ".join(words[:2]) + "\n" + " ".join(words[2:])}) + "\n")
    return path


def queries(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS[:5000], k=5)) for _ in range(n)]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def bench_bm25(tmp: Path) -> None:
    from zerosearch.engines.bm25 import BM25Engine

    corpus = synthetic_corpus(tmp / "bm25-100k.jsonl", 100_000)
    start = time.perf_counter()
    engine = BM25Engine(corpus)
    print(f"bm25: index of 100,000 passages built+loaded in {time.perf_counter() - start:.1f} s")
    batch = [SearchRequest(q, k=5) for q in queries(1000)]
    engine.search(batch[:10])  # warm-up
    start = time.perf_counter()
    for _ in range(3):
        engine.search(batch)
    batched = 3000 / (time.perf_counter() - start)
    print(f"bm25: batches of 1,000 queries: {batched:,.0f} q/s")
    start = time.perf_counter()
    for r in batch[:200]:
        engine.search([r])
    single = 200 / (time.perf_counter() - start)
    print(
        f"bm25: one query per call: {single:,.0f} q/s  (batched/single = {batched / single:.1f}x; goal >= 1,000 q/s batched)"
    )


class Server:
    """`zerosearch serve ...` in a subprocess, so the client does not share its interpreter."""

    def __init__(self, *args: str):
        self.port = free_port()
        cmd = [
            sys.executable,
            "-c",
            "from zerosearch.cli import main; main()",
            "serve",
            "--port",
            str(self.port),
            *args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        deadline = time.time() + 600
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read())
            try:
                if httpx.get(f"{self.url}/health").status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def hammer(url: str, route: str, bodies: list[dict], concurrency: int, timeout: float = 600) -> dict:
    """Send every body once with `concurrency` clients; count statuses and transport failures (lost)."""
    latencies, statuses, lost = [], {}, 0
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:

        async def worker():
            nonlocal lost
            while queue:
                body = queue.pop()
                start = time.perf_counter()
                try:
                    r = await client.post(f"{url}{route}", json=body)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    latencies.append(time.perf_counter() - start)
                except httpx.HTTPError:
                    lost += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"wall": wall, "latencies": latencies, "statuses": statuses, "lost": lost}


def bench_simulator(tmp: Path, model: str, clients: int = 64, per_client: int = 2, max_tokens: int = 32) -> None:
    bodies = [
        {"requests": [{"query": q, "question": f"question {i}?", "answers": ["x"], "k": 5}]}
        for i, q in enumerate(queries(clients * per_client))
    ]
    common = [
        "--engine",
        "simulator",
        "--model",
        model,
        "--prompt",
        "sft",
        "--set",
        f"engine.simulator_max_tokens={max_tokens}",
    ]
    rates = {}
    for label, batch in (("batched (max 64)", "64"), ("one at a time", "1")):
        with Server(*common, "--max-batch", batch) as url:
            asyncio.run(hammer(url, "/search", bodies[:clients], clients))  # warm-up
            out = asyncio.run(hammer(url, "/search", bodies, clients))
            batches = httpx.get(f"{url}/metrics").json()["batches"]
        rates[label] = len(bodies) / out["wall"]
        print(
            f"simulator ({model}, {max_tokens} new tokens, {clients} clients): {label}: {rates[label]:.1f} req/s, "
            f"mean batch {batches['mean_size']}, statuses {out['statuses']}"
        )
    print(
        f"simulator: batched / one-at-a-time throughput = {rates['batched (max 64)'] / rates['one at a time']:.1f}x (goal >= 4x)"
    )


def bench_cache(tmp: Path) -> None:
    from zerosearch.engines.bm25 import BM25Engine
    from zerosearch.engines.cache import CachedEngine

    corpus = synthetic_corpus(tmp / "cache-10k.jsonl", 10_000)
    cache_path = tmp / "cache.sqlite"
    engine = CachedEngine(BM25Engine(corpus), cache_path)
    request = [SearchRequest("w1 w20 w300", k=5)]
    engine.search(request)
    times = []
    for _ in range(2000):
        start = time.perf_counter()
        engine.search(request)
        times.append(time.perf_counter() - start)
    print(f"cache hit in-process: p50 {1000 * pct(times, 50):.3f} ms, p99 {1000 * pct(times, 99):.3f} ms")
    env_set = ["--set", "engine.cache=read-write", "--set", f"engine.cache_path={cache_path}"]
    with Server("--engine", "bm25", "--corpus", str(corpus), *env_set) as url, httpx.Client() as client:
        body = {"requests": [{"query": "w1 w20 w300", "k": 5}]}
        times = []
        for _ in range(2000):
            start = time.perf_counter()
            assert client.post(f"{url}/search", json=body).status_code == 200
            times.append(time.perf_counter() - start)
        cache = client.get(f"{url}/metrics").json()["cache"]
    print(
        f"cache hit through the server (one client, keep-alive): p50 {1000 * pct(times, 50):.3f} ms, p99 {1000 * pct(times, 99):.3f} ms "
        f"(goal p50 <= 2 ms); server cache {cache}"
    )


def bench_load(tmp: Path, corpus: str) -> None:
    bodies = [{"requests": [{"query": q, "k": 5}]} for q in queries(10_000, seed=2)]
    with Server("--engine", "bm25", "--corpus", corpus) as url:
        out = asyncio.run(hammer(url, "/search", bodies, 32))
        metrics = httpx.get(f"{url}/metrics").json()
    five = sum(n for s, n in out["statuses"].items() if s >= 500)
    answered = sum(out["statuses"].values())
    lat = out["latencies"]
    print(
        f"load: 10,000 requests, 32 concurrent, bm25 over {corpus}: {answered} answered, statuses {out['statuses']}, "
        f"5xx {five}, lost {10_000 - answered}, p50 {1000 * pct(lat, 50):.1f} ms, "
        f"p99 {1000 * pct(lat, 99):.1f} ms, {10_000 / out['wall']:.0f} req/s, mean batch {metrics['batches']['mean_size']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["bm25", "simulator", "cache", "load"])
    parser.add_argument("--model", default="tiny-random", help="simulator model (tiny-random or smollm2-135m)")
    parser.add_argument("--corpus", default="mini-world:corpus", help="corpus of the load test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ZEROSEARCH_CACHE", str(Path(tmp) / "cache"))
        tmp = Path(tmp)
        if args.only in (None, "bm25"):
            bench_bm25(tmp)
        if args.only in (None, "simulator"):
            bench_simulator(tmp, args.model)
        if args.only in (None, "cache"):
            bench_cache(tmp)
        if args.only in (None, "load"):
            bench_load(tmp, args.corpus)


if __name__ == "__main__":
    main()
