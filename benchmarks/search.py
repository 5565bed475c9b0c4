"""Search benchmarks (issue 5): bm25s throughput, dynamic batching of the simulator server, cache-hit
latency, and the load scenario to run before sharing a server (bm25, then a simulator with injected faults;
written to benchmarks/results/search_load.json). Prints figures and side-by-side ratios; asserts nothing.

    python benchmarks/search.py                # all four
    python benchmarks/search.py --only load    # one of: bm25, simulator, cache, load
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import httpx

from zerosearch.engines.base import SearchRequest
from zerosearch.serve.app import free_port

WORDS = [f"w{i}" for i in range(30000)]
FAULT_RATE = 0.2


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
        f"bm25: one query per call: {single:,.0f} q/s  (batched/single = {batched / single:.1f}x; "
        "goal >= 1,000 q/s batched)"
    )


class Server:
    """`zerosearch serve ARGS` (or this script's `--serve-faulty ARGS`) in a subprocess, so that the client does
    not share its interpreter; its log goes to a file (a pipe nobody reads would fill up and block it)."""

    def __init__(self, *args: str, faulty: bool = False):
        self.port = free_port()
        head = [__file__, "--serve-faulty"] if faulty else ["-c", "from zerosearch.cli import main; main()", "serve"]
        self.log = tempfile.NamedTemporaryFile("w+", prefix="zerosearch-serve-", suffix=".log")
        cmd = [sys.executable, *head, "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        deadline = time.time() + 600
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(Path(self.log.name).read_text()[-3000:])
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
        self.log.close()


async def hammer(url: str, calls: list[tuple[str, dict]], concurrency: int, check=None, timeout: float = 600) -> dict:
    """Send every (route, body) once with `concurrency` clients; count statuses, transport failures (lost) and
    responses that `check(index, response)` finds are not the answer to their own request (misrouted)."""
    latencies, statuses, lost, misrouted = [], {}, 0, 0
    queue = list(reversed(list(enumerate(calls))))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:

        async def worker():
            nonlocal lost, misrouted
            while queue:
                i, (route, body) = queue.pop()
                start = time.perf_counter()
                try:
                    r = await client.post(f"{url}{route}", json=body)
                except httpx.HTTPError:
                    lost += 1
                    continue
                latencies.append(time.perf_counter() - start)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if check is not None and not check(i, r):
                    misrouted += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"wall": wall, "latencies": latencies, "statuses": statuses, "lost": lost, "misrouted": misrouted}


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
            asyncio.run(hammer(url, [("/search", b) for b in bodies[:clients]], clients))  # warm-up
            out = asyncio.run(hammer(url, [("/search", b) for b in bodies], clients))
            batches = httpx.get(f"{url}/metrics").json()["batches"]
        rates[label] = len(bodies) / out["wall"]
        print(
            f"simulator ({model}, {max_tokens} new tokens, {clients} clients): {label}: {rates[label]:.1f} req/s, "
            f"mean batch {batches['mean_size']}, statuses {out['statuses']}"
        )
    print(
        "simulator: batched / one-at-a-time throughput = "
        f"{rates['batched (max 64)'] / rates['one at a time']:.1f}x (goal >= 4x)"
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
        f"cache hit through the server (one client, keep-alive): p50 {1000 * pct(times, 50):.3f} ms, "
        f"p99 {1000 * pct(times, 99):.3f} ms (goal p50 <= 2 ms); server cache {cache}"
    )


def tag(query: str) -> str:
    return f"{zlib.crc32(query.encode()):08x}"


def faulty(query: str, rate: float = FAULT_RATE) -> bool:
    """The queries whose batches the faulty engine fails: a fixed `rate` of them, chosen by hash."""
    return zlib.crc32(query.encode()) % 1000 < rate * 1000


def serve_faulty(argv: list[str]) -> None:
    """The server of the fault scenario: a tiny simulator that raises for the batches holding a faulty query
    and stamps every document's id with its own query's hash, so that a client can tell its answer apart."""
    import uvicorn

    from zerosearch.engines.base import EngineError
    from zerosearch.engines.simulator import SimulatorEngine
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model
    from zerosearch.serve.app import create_app

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--torch-threads", type=int, default=1, help="on a small shared CPU, 1 beats contention")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.torch_threads)

    class FaultySimulator(SimulatorEngine):
        def _search(self, requests):
            if any(faulty(r.query) for r in requests):
                raise EngineError("injected fault")
            results = super()._search(requests)
            for r, docs in zip(requests, results):
                for d in docs:
                    d.id = tag(r.query)
            return results

    model, tokenizer = load_model(args.model)
    engine = FaultySimulator(HFGenerator(model, tokenizer), prompt="sft", max_new_tokens=args.max_tokens)
    uvicorn.run(create_app(engine), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def summarize(out: dict, n: int, metrics: dict, after: bool) -> dict:
    lat = out["latencies"]
    return {
        "requests": n,
        "statuses": {str(s): c for s, c in sorted(out["statuses"].items())},
        "5xx": sum(c for s, c in out["statuses"].items() if s >= 500),
        "lost": out["lost"] + n - len(lat),
        "misrouted": out["misrouted"],
        "p50_ms": round(1000 * pct(lat, 50), 1),
        "p99_ms": round(1000 * pct(lat, 99), 1),
        "requests_per_s": round(n / out["wall"], 1),
        "batches": metrics["batches"],
        "answers_after": after,
    }


def load_bm25(corpus: str, n: int, concurrency: int) -> dict:
    """bm25 over `corpus`, half the requests on /search and half Search-R1's /retrieve; each answer is checked
    against the documents the same engine gives in-process for that request's query."""
    from zerosearch.engines.bm25 import BM25Engine

    engine = BM25Engine(corpus)
    words = sorted({w.lower() for d in engine.docs for w in re.findall(r"[A-Za-z]{4,}", f"{d.title} {d.text}")})
    rng = random.Random(3)
    texts = [" ".join(rng.sample(words, rng.randint(2, 5))) for _ in range(n)]
    expected = [[d.id for d in docs] for docs in engine.search([SearchRequest(q, k=3) for q in texts])]
    calls = [
        ("/search", {"requests": [{"query": q, "k": 3}]})
        if i % 2
        else ("/retrieve", {"queries": [q], "topk": 3, "return_scores": True})
        for i, q in enumerate(texts)
    ]

    def check(i: int, r: httpx.Response) -> bool:
        if r.status_code != 200:
            return True  # counted among the statuses
        body = r.json()
        if "results" in body:
            return [d["id"] for d in body["results"][0]] == expected[i]
        return [h["document"]["id"] for h in body["result"][0]] == expected[i]

    with Server("--engine", "bm25", "--corpus", corpus) as url:
        out = asyncio.run(hammer(url, calls, concurrency, check))
        after = httpx.post(f"{url}/retrieve", json={"queries": [texts[0]]}).status_code == 200
        after = after and httpx.get(f"{url}/health").json()["status"] == "ok"
        metrics = httpx.get(f"{url}/metrics").json()
    return summarize(out, n, metrics, after) | {"engine": f"bm25 over {corpus} ({len(engine.docs)} passages)"}


def load_faulty_simulator(model: str, n: int, concurrency: int, max_tokens: int) -> dict:
    """The simulator with injected faults on /search: a faulty query's request must get a 5xx and every other
    request a 200 with its own documents (ids stamped with its query's hash)."""
    texts = [f"{q} {i}" for i, q in enumerate(queries(n, seed=4))]

    def check(i: int, r: httpx.Response) -> bool:
        if faulty(texts[i]):
            return r.status_code >= 500
        return r.status_code == 200 and all(d.get("id") == tag(texts[i]) for d in r.json()["results"][0])

    calls = [
        ("/search", {"requests": [{"query": q, "k": 3, "question": f"q{i}?", "answers": ["x"], "mode": "noisy"}]})
        for i, q in enumerate(texts)
    ]
    with Server("--model", model, "--max-tokens", str(max_tokens), faulty=True) as url:
        out = asyncio.run(hammer(url, calls, concurrency, check))
        clean = next(q for q in (f"after {i}" for i in range(100)) if not faulty(q))
        r = httpx.post(f"{url}/search", json={"requests": [{"query": clean}]})
        after = r.status_code == 200 and r.json()["results"][0][0]["id"] == tag(clean)
        after = after and httpx.get(f"{url}/health").json()["status"] == "ok"
        metrics = httpx.get(f"{url}/metrics").json()
    return summarize(out, n, metrics, after) | {
        "engine": f"simulator {model}, {max_tokens} new tokens, 1 torch thread, {FAULT_RATE:.0%} of queries fail "
        "their batch",
        "faulty_requests": sum(faulty(q) for q in texts),
    }


def bench_load(corpus: str, model: str, n: int, concurrency: int, max_tokens: int, out_path: Path) -> None:
    """Before sharing a server: `n` requests at `concurrency` clients against bm25, then against a simulator
    with injected faults. Target: no 5xx on bm25, nothing lost or misrouted, and a server that still answers."""
    results = {
        "machine": {"uname": " ".join(platform.uname()), "nproc": os.cpu_count(), "python": platform.python_version()},
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "concurrency": concurrency,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    scenarios = {
        "bm25": lambda: load_bm25(corpus, n, concurrency),
        "simulator_with_faults": lambda: load_faulty_simulator(model, n, concurrency, max_tokens),
    }
    for name, run in scenarios.items():
        r = results[name] = run()
        out_path.write_text(json.dumps(results, indent=2) + "\n")  # after each: a long run keeps what it measured
        print(
            f"load {name}: {r['requests']} requests, {concurrency} clients: statuses {r['statuses']}, 5xx {r['5xx']}, "
            f"lost {r['lost']}, misrouted {r['misrouted']}, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
            f"{r['requests_per_s']} req/s, answers after: {r['answers_after']}; written to {out_path}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["bm25", "simulator", "cache", "load"])
    parser.add_argument("--model", default="tiny-random", help="simulator model (tiny-random or smollm2-135m)")
    parser.add_argument("--corpus", default="mini-world:corpus", help="corpus of the load test")
    parser.add_argument("--requests", type=int, default=10_000, help="requests of each load scenario")
    parser.add_argument("--concurrency", type=int, default=32, help="clients of the load scenarios")
    parser.add_argument("--max-tokens", type=int, default=4, help="new tokens per simulator call in the load scenario")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "search_load.json")
    if sys.argv[1:2] == ["--serve-faulty"]:
        return serve_faulty(sys.argv[2:])
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
            bench_load(args.corpus, args.model, args.requests, args.concurrency, args.max_tokens, args.out)


if __name__ == "__main__":
    main()
