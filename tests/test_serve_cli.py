import os
import subprocess
import sys
import time

import httpx
from test_engines_bm25 import write_corpus

from zerosearch.serve.app import free_port


def test_serve_command_with_token(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    port = free_port()
    env = {**os.environ, "ZEROSEARCH_CACHE": str(tmp_path / "cache")}
    cmd = [
        sys.executable,
        "-c",
        "from zerosearch.cli import main; main()",
        "serve",
        "--engine",
        "bm25",
        "--corpus",
        str(corpus),
        "--port",
        str(port),
        "--token",
        "T0K",
    ]
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
        body = {"queries": ["who founded Harrow Lake Observatory"], "topk": 2, "return_scores": True}
        assert httpx.post(f"{url}/retrieve", json=body).status_code == 401
        r = httpx.post(f"{url}/retrieve", json=body, headers={"Authorization": "Bearer T0K"})
        assert r.status_code == 200 and r.json()["result"][0][0]["document"]["id"] == "p0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_rejects_bad_flags_cleanly(tmp_path):
    cmd = [
        sys.executable,
        "-c",
        "from zerosearch.cli import main; main()",
        "serve",
        "--corpus",
        str(tmp_path / "none.jsonl"),
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "ZEROSEARCH_CACHE": str(tmp_path / "c")}
    )
    assert out.returncode == 2 and "none.jsonl" in out.stderr and "Traceback" not in out.stderr
