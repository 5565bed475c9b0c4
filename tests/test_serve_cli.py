import contextlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from test_engines_bm25 import write_corpus

from zerosearch.serve.app import free_port

SERVE = [sys.executable, "-c", "from zerosearch.cli import main; main()", "serve"]


@contextlib.contextmanager
def serve(tmp_path, *flags):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    port = free_port()
    env = {**os.environ, "ZEROSEARCH_CACHE": str(tmp_path / "cache")}
    cmd = [*SERVE, "--engine", "bm25", "--corpus", str(corpus), "--port", str(port), *flags]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.time() < deadline, "server did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_command_with_token_and_curriculum(tmp_path):
    flags = ["--token", "T0K", "--curriculum", "--steps", "10", "--seed", "7", "--set", "curriculum.p_end=0.8"]
    with serve(tmp_path, *flags) as url:
        body = {"queries": ["who founded Harrow Lake Observatory"], "topk": 2, "return_scores": True}
        assert httpx.post(f"{url}/retrieve", json=body).status_code == 401
        auth = {"Authorization": "Bearer T0K"}
        r = httpx.post(f"{url}/retrieve", json=body, headers=auth)
        assert r.status_code == 200 and r.json()["result"][0][0]["document"]["id"] == "p0"
        assert httpx.post(f"{url}/curriculum", json={"step": 10}).status_code == 401
        state = httpx.post(f"{url}/curriculum", json={"step": 10}, headers=auth).json()
        assert state["total_steps"] == 10 and state["seed"] == 7 and state["p_noisy"] == 0.8


def test_serve_bm25_answers_what_search_r1_sends_with_default_limits_and_max_wait_ms(tmp_path):
    with serve(tmp_path, "--max-wait-ms", "5") as url:
        r = httpx.post(f"{url}/retrieve", json={"queries": [], "topk": 3, "return_scores": True})
        assert r.status_code == 200 and r.json() == {"result": []}
        r = httpx.post(f"{url}/retrieve", json={"queries": ["trout fishing", "", "glassworks"], "topk": None})
        assert r.status_code == 200 and [len(x) for x in r.json()["result"]] == [3, 0, 3]
        queries = [f"glassworks workers {i}" for i in range(2560)]
        r = httpx.post(f"{url}/retrieve", json={"queries": queries, "topk": 3, "return_scores": True}, timeout=120)
        assert r.status_code == 200 and len(r.json()["result"]) == 2560
        with httpx.Client(timeout=60) as client, ThreadPoolExecutor(100) as pool:
            bodies = [{"queries": [f"query {i}"]} for i in range(100)]
            responses = list(pool.map(lambda b: client.post(f"{url}/retrieve", json=b), bodies))
        assert [r.status_code for r in responses] == [200] * 100
        assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_serve_rejects_bad_flags_cleanly(tmp_path):
    env = {**os.environ, "ZEROSEARCH_CACHE": str(tmp_path / "c")}
    cases = [
        (["--corpus", str(tmp_path / "none.jsonl")], "none.jsonl"),
        # checked before the engine loads (the default corpus would be built first otherwise)
        (["--engine", "bm25", "--set", "engine.k=200"], "max_k"),
        (["--engine", "bm25", "--max-k", "2"], "max_k"),
        (["--engine", "bm25", "--steps", "5"], "--curriculum"),
    ]
    for flags, expected in cases:
        out = subprocess.run([*SERVE, *flags], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 2 and expected in out.stderr and "Traceback" not in out.stderr, out.stderr
