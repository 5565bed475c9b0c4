"""The search server: any engine over HTTP, with dynamic batching (FastAPI + uvicorn).

Routes: `POST /search` (ours), `POST /retrieve` (the Search-R1 retriever protocol, which verl's search tool
also speaks), `GET|POST /curriculum` (the step of a curriculum the server runs), `GET /health`, `GET /metrics`.
The wire protocol, the limits and the error behaviour are in docs/serving.md.

Queries come from a policy, so one odd query is answered, not refused: a blank one gets no documents and an
over-long one is cut, and the rest of its batch is served. Malformed requests (wrong types, unknown fields)
get a 4xx naming the field; overload a 503 with Retry-After; an engine failure a 500 (504 past the deadline)
for the requests it hit, with an error id and no internals, the details going to the server log.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from zerosearch.curriculum import schedule
from zerosearch.engines.base import Document, SearchEngine, SearchRequest
from zerosearch.errors import ConfigError
from zerosearch.serve.batching import Batcher, EngineTimeout, QueueFull, WorkerDown

log = logging.getLogger(__name__)
MODES = ("useful", "noisy")


@dataclass
class Limits:
    max_queries: int = 4096  # per HTTP request; Search-R1's GRPO script sends 512 x 5 = 2,560
    max_k: int = 100
    max_query_chars: int = 4096  # longer queries are cut to this
    max_body_bytes: int = 16 << 20
    default_k: int = 5  # /search
    retrieve_default_k: int = 3  # /retrieve: Search-R1's retrieval_topk

    def __post_init__(self):
        for f in fields(self):
            if type(getattr(self, f.name)) is not int or getattr(self, f.name) < 1:
                raise ConfigError(f"server limit {f.name} must be an integer >= 1, got {getattr(self, f.name)!r}")
        for name in ("default_k", "retrieve_default_k"):
            if getattr(self, name) > self.max_k:  # else every request that leaves k out would get a 400
                raise ConfigError(
                    f"the server's default k ({name}={getattr(self, name)}) is larger than max_k={self.max_k}: "
                    "raise --max-k or lower the default (engine.k, --retrieve-topk)"
                )


class BadRequest(Exception):
    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field, self.status = field, status


class Curriculum:
    """Eq. 1 on the server: a query whose request fixes no mode is noisy with probability p(step).

    The step is the one the trainer last reported (`POST /curriculum`), or a request's own `step`, clamped to
    `total_steps`. One seeded generator draws in arrival order, as the trainer draws per search call.
    """

    def __init__(
        self,
        total_steps: int,
        kind: str = "exponential",
        p_start: float = 0.0,
        p_end: float = 0.5,
        base: float = 4.0,
        seed: int = 0,
    ):
        self.probabilities = schedule(kind, total_steps, p_start, p_end, base)
        self.total_steps, self.kind, self.seed, self.step = total_steps, kind, seed, 0
        self.drawn: Counter[str] = Counter()
        self._rng = random.Random(seed)

    def p_noisy(self, step: int | None = None) -> float:
        return self.probabilities[min(self.step if step is None else step, self.total_steps)]

    def draw(self, step: int | None = None) -> str:
        mode = "noisy" if self._rng.random() < self.p_noisy(step) else "useful"
        self.drawn[mode] += 1
        return mode

    def state(self) -> dict:
        return {
            "schedule": self.kind,
            "total_steps": self.total_steps,
            "step": self.step,
            "p_noisy": round(self.p_noisy(), 6),
            "seed": self.seed,
            "drawn": {m: self.drawn[m] for m in MODES},
        }


@dataclass
class Parsed:
    requests: list[SearchRequest | None]  # None: a blank query, answered with no documents
    step: int | None = None
    with_scores: bool = False
    cut: int = 0  # queries cut to max_query_chars


def _int(value, field: str, lo: int, hi: int) -> int:
    if type(value) is not int:  # not bool, not float
        raise BadRequest(field, f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise BadRequest(field, f"must be in [{lo}, {hi}], got {value}")
    return value


def _k(value, field: str, default: int, limits: Limits) -> int:
    if value is None or (type(value) is int and value == 0):  # Search-R1: no topk, null or 0 means the default
        return default
    return _int(value, field, 1, limits.max_k)


def _object(value, field: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(field, "must be a JSON object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:  # a misspelt conditioning field would silently leave the simulator unconditioned
        prefix = f"{field}." if field != "body" else ""
        raise BadRequest(f"{prefix}{unknown[0]}", f"unknown field (known: {', '.join(allowed)})")
    return value


def _list(body: dict, key: str, limits: Limits) -> list:
    value = body.get(key)
    if not isinstance(value, list):
        raise BadRequest(key, f"must be a list, got {type(value).__name__ if key in body else 'nothing'}")
    if len(value) > limits.max_queries:
        raise BadRequest(key, f"at most {limits.max_queries} queries per request, got {len(value)}", 413)
    return value


def _conditioning(item: dict, at: str, answers_key: str, inherited: tuple = (None, [], None)) -> tuple:
    """(question, answers, mode) of one query; what the item leaves out comes from `inherited`."""
    question = item.get("question", inherited[0])
    if question is not None and not isinstance(question, str):
        raise BadRequest(f"{at}question", f"must be a string, got {type(question).__name__}")
    answers = item.get(answers_key, inherited[1])
    answers = [answers] if isinstance(answers, str) else answers if answers is not None else []
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise BadRequest(f"{at}{answers_key}", "must be a string or a list of strings")
    mode = item.get("mode", inherited[2])
    if mode is not None and mode not in MODES:
        raise BadRequest(f"{at}mode", f"must be 'useful' or 'noisy', got {mode!r}")
    return question, list(answers), mode


def _request(query, at: str, k: int, conditioning: tuple, limits: Limits, parsed: Parsed) -> SearchRequest | None:
    if not isinstance(query, str):
        raise BadRequest(at, f"must be a string, got {type(query).__name__}")
    if not query.strip():
        return None
    if len(query) > limits.max_query_chars:
        query = query[: limits.max_query_chars]
        parsed.cut += 1
    question, answers, mode = conditioning
    # mode None: the curriculum (or "useful") decides in `create_app`, before the request leaves this module.
    return SearchRequest(query=query, k=k, question=question, answers=answers, mode=mode)


def _step(body: dict) -> int | None:
    return None if body.get("step") is None else _int(body["step"], "step", 0, 10**9)


def parse_search(body, limits: Limits) -> Parsed:
    """Ours: `{"requests": [{"query", "k"?, "question"?, "answers"?, "mode"?}], "step"?}`."""
    body = _object(body, "body", ("requests", "step"))
    parsed = Parsed([], step=_step(body))
    for i, item in enumerate(_list(body, "requests", limits)):
        at = f"requests[{i}]"
        item = _object(item, at, ("query", "k", "question", "answers", "mode"))
        k = _k(item.get("k"), f"{at}.k", limits.default_k, limits)
        parsed.requests.append(
            _request(item.get("query"), f"{at}.query", k, _conditioning(item, f"{at}.", "answers"), limits, parsed)
        )
    return parsed


RETRIEVE_FIELDS = ("queries", "topk", "return_scores", "question", "golden_answers", "mode", "step")


def parse_retrieve(body, limits: Limits) -> Parsed:
    """Search-R1: `{"queries": [...], "topk"?, "return_scores"?}`, plus optional conditioning for a simulator:
    `question`, `golden_answers`, `mode` for the whole request, and queries given as objects
    `{"query", "question"?, "golden_answers"?, "mode"?}` that override them; `step` for the curriculum."""
    body = _object(body, "body", RETRIEVE_FIELDS)
    queries = _list(body, "queries", limits)
    k = _k(body.get("topk"), "topk", limits.retrieve_default_k, limits)
    scores = body.get("return_scores", False)
    if not isinstance(scores, bool):
        raise BadRequest("return_scores", f"must be true or false, got {type(scores).__name__}")
    parsed = Parsed([], step=_step(body), with_scores=scores)
    shared = _conditioning(body, "", "golden_answers")
    for i, query in enumerate(queries):
        at, conditioning = f"queries[{i}]", shared
        if isinstance(query, dict):
            item = _object(query, at, ("query", "question", "golden_answers", "mode"))
            query, conditioning = item.get("query"), _conditioning(item, f"{at}.", "golden_answers", shared)
            at += ".query"
        parsed.requests.append(_request(query, at, k, conditioning, limits, parsed))
    return parsed


def _title_from(text: str, words: int = 6) -> str:
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].split()[:words]
    return " ".join(first).rstrip(".,;:!?") or "Result"


def _contents(doc: Document) -> dict | None:
    """A document as Search-R1's corpus holds it: `contents` is a title line, then the text; None if empty.

    Both clients take the first line as the title and the rest as the text, so a document without a title
    (a simulator's) gets one made of its first words rather than becoming all title and no text.
    """
    text, title = doc.text.strip(), " ".join((doc.title or "").split())
    if not text and not title:  # a simulator's padding: leave it out rather than send `Doc 2(Title: )`
        return None
    return {"id": doc.id, "contents": f"{title or _title_from(text)}\n{text or title}"}


def redact(identity: str, hide_hosts: bool) -> str:
    """An engine identity for /metrics: URL credentials (user:password@, ?query) never leave; hosts and local
    directories only to a client that holds the token."""
    if hide_hosts:
        identity = re.sub(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s,|]+", r"\1<redacted>", identity)
        return re.sub(r"(?<![\w/.])/(?:[^\s/:|,@]+/)+", ".../", identity)
    return re.sub(r"\?[^\s,|]*", "", re.sub(r"://[^\s,|/@]*@", "://", identity))


class Stats:
    """What /metrics reports: requests by route and status, latency percentiles of recent requests, queries."""

    def __init__(self, window: int = 10000):
        self.requests: Counter[str] = Counter()
        self.queries: Counter[str] = Counter()  # blank, cut, useful, noisy
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
    max_queue: int = 16384,
    timeout_s: float | None = 600.0,
    limits: Limits | None = None,
    curriculum: Curriculum | None = None,
) -> FastAPI:
    limits = limits or Limits()
    if limits.max_queries > max_queue:
        raise ConfigError(
            f"max_queries={limits.max_queries} is larger than max_queue={max_queue}: the largest requests "
            "would always be refused as overload"
        )
    batcher = Batcher(engine, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, timeout_s=timeout_s)
    stats = Stats()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="zerosearch search server", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.batcher, app.state.stats, app.state.curriculum = engine, batcher, stats, curriculum

    def error(status: int, message: str, field: str | None = None, headers: dict | None = None, **extra):
        return JSONResponse(
            {"error": message, **({"field": field} if field else {}), **extra}, status_code=status, headers=headers
        )

    def internal(status: int, what: str, route: str, e: Exception) -> JSONResponse:
        # The exception text may hold remote URLs, cache paths or keys: it goes to the log, the client gets an id.
        error_id = uuid.uuid4().hex[:12]
        log.error("%s on %s (error id %s): %s: %s", what, route, error_id, type(e).__name__, e, exc_info=e)
        return error(status, f"{what} (error id {error_id}; details in the server log)", error_id=error_id)

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

    def choose_modes(parsed: Parsed) -> list[SearchRequest]:
        if parsed.step is not None and curriculum is None:
            raise BadRequest("step", "this server runs no curriculum (start it with `zerosearch serve --curriculum`)")
        requests = [r for r in parsed.requests if r is not None]
        for r in requests:
            if r.mode is None:
                r.mode = curriculum.draw(parsed.step) if curriculum else "useful"
            stats.queries[r.mode] += 1
        stats.queries["blank"] += len(parsed.requests) - len(requests)
        stats.queries["cut"] += parsed.cut
        return requests

    async def handle(request: Request, route: str, parse, render) -> JSONResponse:
        start = time.perf_counter()
        response = unauthorized(request)
        if response is None:
            try:
                parsed = parse(await read_json(request), limits)
                answers = iter(await batcher.search(choose_modes(parsed)))
                response = JSONResponse(render([[] if r is None else next(answers) for r in parsed.requests], parsed))
            except BadRequest as e:
                response = error(e.status, str(e), e.field)
            except QueueFull:
                response = error(
                    503, f"server busy: more than {max_queue} queries waiting", headers={"Retry-After": "1"}
                )
            except WorkerDown:
                response = error(503, "the batching worker is down; restart the server")
            except EngineTimeout as e:
                response = internal(504, f"engine did not answer within {batcher.timeout_s} s", route, e)
            except Exception as e:  # the engine failed on this request; others carry on
                response = internal(500, "engine error", route, e)
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
        def render(results, parsed: Parsed):
            hits = [[(c, d.score) for d in docs if (c := _contents(d)) is not None] for docs in results]
            if parsed.with_scores:
                return {"result": [[{"document": c, "score": s} for c, s in docs] for docs in hits]}
            return {"result": [[c for c, _ in docs] for docs in hits]}

        return await handle(request, "/retrieve", parse_retrieve, render)

    @app.get("/curriculum")
    async def curriculum_state(request: Request):
        if denied := unauthorized(request):
            return denied
        if curriculum is None:
            return error(404, "this server runs no curriculum (start it with `zerosearch serve --curriculum`)")
        return curriculum.state()

    @app.post("/curriculum")
    async def curriculum_step(request: Request):
        """The trainer reports its step: `{"step": N}`; later queries that fix no mode are drawn at p(N)."""
        if denied := unauthorized(request):
            return denied
        if curriculum is None:
            return error(404, "this server runs no curriculum (start it with `zerosearch serve --curriculum`)")
        try:
            step = _step(_object(await read_json(request), "body", ("step",)))
            if step is None:
                raise BadRequest("step", "must be an integer >= 0")
        except BadRequest as e:
            return error(e.status, str(e), e.field)
        curriculum.step = step
        return curriculum.state()

    @app.get("/health")
    async def health():
        if not batcher.alive:
            return JSONResponse({"status": "down", "engine": engine.name, "error": "the batching worker stopped"}, 503)
        if batcher.stuck:
            return JSONResponse({"status": "stuck", "engine": engine.name, "error": "an engine call is overdue"}, 503)
        return {"status": "ok", "engine": engine.name}

    @app.get("/metrics")
    async def metrics(request: Request):
        if denied := unauthorized(request):
            return denied
        sizes = batcher.batch_sizes
        calls = sum(sizes.values())
        body = {
            "engine": redact(engine.identity(), hide_hosts=token is None),
            "uptime_s": round(time.time() - stats.started, 1),
            "worker": "ok" if batcher.alive else "down",
            "requests": dict(stats.requests),
            "latency": stats.percentiles(),
            "queries": {key: stats.queries[key] for key in ("useful", "noisy", "blank", "cut")},
            "queue": {"pending_queries": batcher.pending, "max_queue": max_queue},
            "batches": {
                "calls": calls,
                "mean_size": round(sum(s * n for s, n in sizes.items()) / calls, 2) if calls else 0,
                "max_size": max(sizes, default=0),
                **{key: batcher.counts[key] for key in ("failed_calls", "retries", "timeouts")},
            },
            "meter": engine.meter.to_dict(),
        }
        if curriculum is not None:
            body["curriculum"] = curriculum.state()
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
