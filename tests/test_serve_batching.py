import asyncio
import time
import types

import httpx
from test_serve_app import Fragile, post_many

from zerosearch.engines.base import Document, PartialResults, SearchEngine, SearchRequest
from zerosearch.serve import batching
from zerosearch.serve.app import create_app, running_server


def test_concurrent_requests_are_coalesced_up_to_max_batch():
    engine = Fragile(delay=0.2)
    with running_server(create_app(engine, max_batch=6)) as url:
        queries = [f"q{i}" for i in range(16)]
        responses = post_many(url, queries)
    assert [r.json()["results"][0][0]["text"] for r in responses] == queries  # each client gets its own answer
    assert sum(engine.batches) == 16 and max(engine.batches) == 6 and len(engine.batches) < 16


def test_max_batch_one_calls_the_engine_per_request():
    engine = Fragile(delay=0.02)
    with running_server(create_app(engine, max_batch=1)) as url:
        post_many(url, [f"q{i}" for i in range(6)])
    assert engine.batches == [1] * 6


def test_max_batch_caps_one_large_request_too():
    engine = Fragile(delay=0.0)
    with running_server(create_app(engine, max_batch=6)) as url:
        queries = [f"q{i}" for i in range(20)]
        r = httpx.post(f"{url}/search", json={"requests": [{"query": q} for q in queries]})
    assert [docs[0]["text"] for docs in r.json()["results"]] == queries
    assert engine.batches == [6, 6, 6, 2]


def test_a_failed_piece_fails_its_request_and_nothing_that_succeeded_runs_again():
    engine = Fragile(delay=0.0)
    queries = [f"q{i}" for i in range(12)] + ["boom"] + [f"q{i}" for i in range(13, 20)]
    with running_server(create_app(engine, max_batch=6)) as url:
        r = httpx.post(f"{url}/search", json={"requests": [{"query": q} for q in queries]})
        assert r.status_code == 500
        assert httpx.post(f"{url}/search", json={"requests": [{"query": "later"}]}).status_code == 200
    assert engine.batches == [6, 6, 6, 1]  # the piece after the failed one was never sent; `later` was
    assert max(engine.succeeded.values()) == 1


def test_with_max_wait_ms_the_worker_survives_its_timeouts_and_answers_100_concurrent_requests():
    engine = Fragile(delay=0.01)
    with running_server(create_app(engine, max_wait_ms=5, max_batch=8)) as url:
        queries = [f"q{i}" for i in range(100)]
        for _ in range(2):  # a second wave: the first one's idle waits timed out in between
            responses = post_many(url, queries)
            assert [r.json()["results"][0][0]["text"] for r in responses] == queries
            time.sleep(0.05)
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert max(engine.batches) > 1


def test_the_wait_timeout_is_caught_with_the_semantics_of_python_3_10(monkeypatch):
    # Before 3.11, asyncio.wait_for raises asyncio.TimeoutError, a class apart from the builtin TimeoutError:
    # give the batcher an asyncio whose wait_for and TimeoutError behave that way.
    class TimeoutError310(Exception):
        pass

    async def wait_for_310(awaitable, timeout):
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            raise TimeoutError310 from None

    py310 = types.SimpleNamespace(**vars(asyncio))
    py310.wait_for, py310.TimeoutError = wait_for_310, TimeoutError310
    monkeypatch.setattr(batching, "asyncio", py310)

    async def scenario():
        batcher = batching.Batcher(Fragile(delay=0.0), max_wait_ms=5)
        batcher.start()
        try:
            for i in range(3):  # each batch's wait for stragglers times out
                result = await asyncio.wait_for(batcher.search([SearchRequest(f"q{i}")]), 5)
                assert result[0][0].text == f"q{i}"
                await asyncio.sleep(0.02)
            assert batcher.alive
        finally:
            await batcher.stop()

    asyncio.run(scenario())


def test_health_reports_a_dead_worker_and_requests_get_503_instead_of_hanging():
    app = create_app(Fragile(delay=0.0))
    with running_server(app) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        task = app.state.batcher._task
        task.get_loop().call_soon_threadsafe(task.cancel)
        deadline = time.time() + 5
        while not task.done() and time.time() < deadline:
            time.sleep(0.01)
        r = httpx.get(f"{url}/health")
        assert r.status_code == 503 and r.json()["status"] == "down"
        r = httpx.post(f"{url}/search", json={"requests": [{"query": "q"}]}, timeout=5)
        assert r.status_code == 503
        assert httpx.get(f"{url}/metrics").json()["worker"] == "down"


def test_a_batch_past_its_deadline_gets_504_and_the_server_recovers():
    engine = Fragile(delay=1.0)
    with running_server(create_app(engine, timeout_s=0.3)) as url:
        start = time.perf_counter()
        r = httpx.post(f"{url}/search", json={"requests": [{"query": "slow"}]}, timeout=10)
        assert r.status_code == 504 and time.perf_counter() - start < 0.9 and "error_id" in r.json()
        assert httpx.get(f"{url}/health").json()["status"] == "stuck"  # the engine call still runs
        time.sleep(1.0)
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
        engine.delay = 0.0
        r = httpx.post(f"{url}/search", json={"requests": [{"query": "fast"}]})
        assert r.status_code == 200 and r.json()["results"][0][0]["text"] == "fast"
        assert httpx.get(f"{url}/metrics").json()["batches"]["timeouts"] == 1


class PartlyFailing(SearchEngine):
    """Answers every query but `boom` within the same call, as the web engine does: PartialResults."""

    name = "partly"

    def __init__(self):
        super().__init__()
        self.sent = []

    def _search(self, requests):
        self.sent += [r.query for r in requests]
        results = [None if r.query == "boom" else [Document(text=r.query)] for r in requests]
        if any(docs is None for docs in results):
            raise PartialResults("boom failed", results)
        return results


def test_answered_queries_of_a_partly_failed_call_are_delivered_and_never_sent_again():
    engine = PartlyFailing()
    with running_server(create_app(engine, max_batch=64)) as url:
        ok = httpx.post(f"{url}/search", json={"requests": [{"query": q} for q in ("a", "b")]})
        bad = httpx.post(f"{url}/search", json={"requests": [{"query": q} for q in ("c", "boom", "d")]})
    assert ok.status_code == 200 and [docs[0]["text"] for docs in ok.json()["results"]] == ["a", "b"]
    assert bad.status_code == 500
    assert sorted(q for q in engine.sent if q != "boom") == ["a", "b", "c", "d"]  # each answered query sent once
