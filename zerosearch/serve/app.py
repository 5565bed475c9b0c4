"""The search server: any engine over HTTP, with dynamic batching (FastAPI + uvicorn).

Routes: `POST /search` (ours), `POST /retrieve` (drop-in for the Search-R1 retriever), `GET /health`,
`GET /metrics`. Bad input gets a 4xx JSON error naming the field, overload a 503 with Retry-After, an
engine failure a 500 for the requests it hit; the server keeps serving through all of them.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from zerosearch.engines.base import Document, SearchEngine, SearchRequest
from zerosearch.serve.batching import Batcher, QueueFull


@dataclass
class Limits:
    max_queries: int = 512  # per HTTP request
    max_k: int = 100
    max_query_chars: int = 4096
    max_body_bytes: int = 1 << 20
    default_k: int = 5
    retrieve_default_k: int = 3  # Search-R1's retrieval_topk


class BadRequest(Exception):
    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field, self.status = field, status


def _int(value, field: str, lo: int, hi: int) -> int:
    if type(value) is not int:  # not bool, not float
        raise BadRequest(field, f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise BadRequest(field, f"must be in [{lo}, {hi}], got {value}")
    return value


def _query(value, field: str, limits: Limits) -> str:
    if not isinstance(value, str):
        raise BadRequest(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadRequest(field, "must not be empty")
    if len(value) > limits.max_query_chars:
        raise BadRequest(field, f"longer than {limits.max_query_chars} characters", 413)
    return value


def _list(body: dict, key: str, limits: Limits) -> list:
    value = body.get(key)
    if not isinstance(value, list):
        raise BadRequest(key, f"must be a list, got {type(value).__name__ if key in body else 'nothing'}")
    if not value:
        raise BadRequest(key, "must not be empty")
    if len(value) > limits.max_queries:
        raise BadRequest(key, f"at most {limits.max_queries} queries per request, got {len(value)}", 413)
    return value


def parse_search(body, limits: Limits) -> list[SearchRequest]:
    """`{"requests": [{"query", "k"?, "question"?, "answers"?, "mode"?}]}`."""
    if not isinstance(body, dict):
        raise BadRequest("body", "must be a JSON object")
    requests = []
    for i, item in enumerate(_list(body, "requests", limits)):
        at = f"requests[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(at, "must be an object")
        query = _query(item.get("query"), f"{at}.query", limits)
        k = _int(item.get("k", limits.default_k), f"{at}.k", 1, limits.max_k)
        question = item.get("question")
        if question is not None and not isinstance(question, str):
            raise BadRequest(f"{at}.question", f"must be a string, got {type(question).__name__}")
        answers = item.get("answers") or []
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise BadRequest(f"{at}.answers", "must be a list of strings")
        mode = item.get("mode", "useful")
        if mode not in ("useful", "noisy"):
            raise BadRequest(f"{at}.mode", f"must be 'useful' or 'noisy', got {mode!r}")
        requests.append(SearchRequest(query=query, k=k, question=question, answers=answers, mode=mode))
    return requests


def parse_retrieve(body, limits: Limits) -> tuple[list[SearchRequest], bool]:
    """Search-R1: `{"queries": [...], "topk": N, "return_scores": bool}`."""
    if not isinstance(body, dict):
        raise BadRequest("body", "must be a JSON object")
    queries = _list(body, "queries", limits)
    k = _int(body.get("topk", limits.retrieve_default_k), "topk", 1, limits.max_k)
    scores = body.get("return_scores", False)
    if not isinstance(scores, bool):
        raise BadRequest("return_scores", f"must be true or false, got {type(scores).__name__}")
    return [SearchRequest(query=_query(q, f"queries[{i}]", limits), k=k) for i, q in enumerate(queries)], scores


def _contents(doc: Document) -> dict:
    return {"id": doc.id, "contents": f"{doc.title}\n{doc.text}" if doc.title else doc.text}


class Stats:
    """What /metrics reports: requests by route and status, latency percentiles of recent requests."""

    def __init__(self, window: int = 10000):
        self.requests: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=window)
        self.started = time.time()

    def record(self, route: str, status: int, seconds: float) -> None:
        self.requests[f"{route} {status}"] += 1
        self.latencies.append(seconds)

    def percentiles(self) -> dict:
        data = sorted(self.latencies)
        if not data:
            return {}
        return {f"p{q}_ms": round(1000 * data[min(len(data) - 1, int(q / 100 * len(data)))], 3) for q in (50, 90, 99)}


def create_app(
    engine: SearchEngine,
    *,
    token: str | None = None,
    max_batch: int = 64,
    max_wait_ms: float = 0.0,
    max_queue: int = 4096,
    limits: Limits | None = None,
) -> FastAPI:
    limits = limits or Limits()
    batcher = Batcher(engine, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
    stats = Stats()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="zerosearch search server", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.batcher, app.state.stats = engine, batcher, stats

    def error(status: int, message: str, field: str | None = None, headers: dict | None = None) -> JSONResponse:
        return JSONResponse(
            {"error": message, **({"field": field} if field else {})}, status_code=status, headers=headers
        )

    def unauthorized(request: Request) -> JSONResponse | None:
        if token is None:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return error(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    async def read_json(request: Request):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise BadRequest("body", f"larger than {limits.max_body_bytes} bytes", 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_body_bytes:
                raise BadRequest("body", f"larger than {limits.max_body_bytes} bytes", 413)
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError; RecursionError: deep nesting
            raise BadRequest("body", f"not valid JSON ({str(e)[:200]})") from None

    async def handle(request: Request, route: str, parse, render) -> JSONResponse:
        start = time.perf_counter()
        response = unauthorized(request)
        if response is None:
            try:
                parsed = parse(await read_json(request), limits)
                requests, extra = parsed if isinstance(parsed, tuple) else (parsed, None)
                response = JSONResponse(render(await batcher.search(requests), extra))
            except BadRequest as e:
                response = error(e.status, str(e), e.field)
            except QueueFull:
                response = error(
                    503, f"server busy: more than {max_queue} queries waiting", headers={"Retry-After": "1"}
                )
            except Exception as e:  # the engine failed on this request; others carry on
                response = error(500, f"engine error: {type(e).__name__}: {e}"[:500])
        stats.record(route, response.status_code, time.perf_counter() - start)
        return response

    @app.post("/search")
    async def search(request: Request):
        return await handle(
            request,
            "/search",
            parse_search,
            lambda results, _: {"results": [[d.to_dict() for d in docs] for docs in results]},
        )

    @app.post("/retrieve")
    async def retrieve(request: Request):
        def render(results, with_scores):
            if with_scores:
                return {"result": [[{"document": _contents(d), "score": d.score} for d in docs] for docs in results]}
            return {"result": [[_contents(d) for d in docs] for docs in results]}

        return await handle(request, "/retrieve", parse_retrieve, render)

    @app.get("/health")
    async def health():
        return {"status": "ok", "engine": engine.name}

    @app.get("/metrics")
    async def metrics(request: Request):
        denied = unauthorized(request)
        if denied:
            return denied
        sizes = batcher.batch_sizes
        calls = sum(sizes.values())
        body = {
            "engine": engine.identity(),
            "uptime_s": round(time.time() - stats.started, 1),
            "requests": dict(stats.requests),
            "latency": stats.percentiles(),
            "queue": {"pending_queries": batcher.pending, "max_queue": max_queue},
            "batches": {
                "calls": calls,
                "mean_size": round(sum(s * n for s, n in sizes.items()) / calls, 2) if calls else 0,
                "max_size": max(sizes, default=0),
            },
            "meter": engine.meter.to_dict(),
        }
        if hasattr(engine, "stats"):
            body["cache"] = engine.stats()
        if hasattr(engine, "well_formed"):
            body["simulator"] = {"documents": engine.documents, "well_formed": engine.well_formed}
        return body

    return app


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn in a background thread; yields its base URL (tests, benchmarks, notebooks)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port or free_port(host), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("the search server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
