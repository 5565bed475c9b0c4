import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_engines_bm25 import write_corpus

from zerosearch.engines.base import Document, SearchEngine, SearchRequest
from zerosearch.engines.bm25 import BM25Engine
from zerosearch.errors import ConfigError
from zerosearch.serve.app import Limits, create_app, redact, running_server


@pytest.fixture(scope="module")
def bm25(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    return BM25Engine(write_corpus(tmp / "corpus.jsonl"), index_dir=tmp / "index")


@pytest.fixture(scope="module")
def url(bm25):
    with running_server(create_app(bm25, limits=Limits(max_queries=8, max_k=20, max_body_bytes=4096))) as url:
        yield url


def test_search_and_retrieve_shapes(url, bm25):
    r = httpx.post(
        f"{url}/search", json={"requests": [{"query": "glassworks workers", "k": 2}, {"query": "trout fishing"}]}
    )
    assert r.status_code == 200
    results = r.json()["results"]
    assert [len(x) for x in results] == [2, 5]
    expected = bm25.search([SearchRequest("glassworks workers", k=2)])[0][0]  # the engine's own score, in-process
    assert expected.score > 0
    assert results[0][0] == {
        "id": "p4",
        "title": "Kessel Glassworks",
        "text": "The Kessel Glassworks employed four hundred workers in 1920.",
        "score": pytest.approx(expected.score),
    }
    r = httpx.post(
        f"{url}/retrieve", json={"queries": ["glassworks workers", "trout fishing"], "topk": 2, "return_scores": True}
    )
    hit = r.json()["result"][0][0]
    assert hit["document"] == {
        "id": "p4",
        "contents": "Kessel Glassworks\nThe Kessel Glassworks employed four hundred workers in 1920.",
    }
    assert hit["score"] > 0 and len(r.json()["result"][1]) == 2
    r = httpx.post(f"{url}/retrieve", json={"queries": ["trout fishing"]})
    assert len(r.json()["result"][0]) == 3 and set(r.json()["result"][0][0]) == {
        "id",
        "contents",
    }  # Search-R1 default topk


MALFORMED = [
    (b"{", "body"),
    (b"", "body"),
    (b"\xff\xfe", "body"),
    (b"[]", "body"),
    (b'"requests"', "body"),
    (b"[" * 3000, "body"),
    (b"{}", "requests"),
    (b'{"requests": {}}', "requests"),
    (b'{"requests": [1]}', "requests[0]"),
    (b'{"requests": [{}]}', "requests[0].query"),
    (b'{"requests": [{"query": 5}]}', "requests[0].query"),
    (b'{"requests": [{"query": "a", "k": 21}]}', "requests[0].k"),
    (b'{"requests": [{"query": "a", "k": "5"}]}', "requests[0].k"),
    (b'{"requests": [{"query": "a", "k": 2.5}]}', "requests[0].k"),
    (b'{"requests": [{"query": "a", "k": true}]}', "requests[0].k"),
    (b'{"requests": [{"query": "a", "k": NaN}]}', "requests[0].k"),
    (b'{"requests": [{"query": "a", "mode": "evil"}]}', "requests[0].mode"),
    (b'{"requests": [{"query": "a", "answers": [1]}]}', "requests[0].answers"),
    (b'{"requests": [{"query": "a", "question": 3}]}', "requests[0].question"),
    (b'{"requests": [{"query": "a", "answer": ["x"]}]}', "requests[0].answer"),
    (b'{"requests": [{"query": "a"}], "stepp": 1}', "stepp"),
    (b'{"requests": [{"query": "a"}], "step": 1}', "step"),
    (json.dumps({"requests": [{"query": "a"}] * 9}).encode(), "requests"),
    (json.dumps({"requests": [{"query": "a" * 5000}]}).encode(), "body"),
]
MALFORMED_RETRIEVE = [
    (b'{"queries": "a"}', "queries"),
    (b'{"queries": ["a", 1]}', "queries[1]"),
    (b'{"queries": ["a"], "topk": -1}', "topk"),
    (b'{"queries": ["a"], "return_scores": "yes"}', "return_scores"),
    (b'{"topk": 3}', "queries"),
    (b'{"queries": ["a"], "topk": 2.0}', "topk"),
    (b'{"queries": ["a"], "golden_answer": ["x"]}', "golden_answer"),
    (b'{"queries": ["a"], "golden_answers": [1]}', "golden_answers"),
    (b'{"queries": ["a"], "mode": "evil"}', "mode"),
    (b'{"queries": ["a"], "question": ["q"]}', "question"),
    (b'{"queries": ["a"], "step": -1}', "step"),
    (b'{"queries": [{"query": 5}]}', "queries[0].query"),
    (b'{"queries": [{"query": "a", "mod": "noisy"}]}', "queries[0].mod"),
    (b'{"queries": [{"query": "a", "mode": "evil"}]}', "queries[0].mode"),
]


def test_hundreds_of_malformed_requests_get_4xx_and_the_server_keeps_serving(url):
    cases = [("/search", *c) for c in MALFORMED] + [("/retrieve", *c) for c in MALFORMED_RETRIEVE]
    with httpx.Client() as client:
        for i in range(300):
            route, body, field = cases[i % len(cases)]
            r = client.post(f"{url}{route}", content=body, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (body[:60], r.status_code)
            assert r.json()["field"] == field, (body[:60], r.json())
        assert client.get(f"{url}/nope").status_code == 404
        assert client.get(f"{url}/search").status_code == 405
        assert client.get(f"{url}/health").json()["status"] == "ok"
        r = client.post(f"{url}/search", json={"requests": [{"query": "lantern festival", "k": 1}]})
        assert r.status_code == 200 and r.json()["results"][0][0]["id"] == "p2"
        metrics = client.get(f"{url}/metrics").json()
    assert sum(n for key, n in metrics["requests"].items() if key.split()[1].startswith("4")) >= 300


def test_body_too_large_is_413(url):
    r = httpx.post(f"{url}/search", content=b'{"requests": [{"query": "' + b"a" * 5000 + b'"}]}')
    assert r.status_code == 413 and r.json()["field"] == "body"
    assert httpx.post(f"{url}/search", json={"requests": [{"query": "a"}] * 9}).status_code == 413


def test_token_guards_every_route_but_health(bm25):
    with running_server(create_app(bm25, token="s3cret")) as url:
        body = {"requests": [{"query": "trout"}]}
        assert httpx.get(f"{url}/health").status_code == 200
        for r in (
            httpx.post(f"{url}/search", json=body),
            httpx.post(f"{url}/retrieve", json={"queries": ["x"]}),
            httpx.get(f"{url}/metrics"),
            httpx.post(f"{url}/search", json=body, headers={"Authorization": "Bearer wrong"}),
        ):
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert httpx.post(f"{url}/search", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200


class Fragile(SearchEngine):
    """Fails any batch holding the query `boom`; sleeps a little so that concurrent requests get batched."""

    name = "fragile"

    def __init__(self, delay=0.05):
        super().__init__()
        self.delay, self.batches, self.succeeded = delay, [], Counter()

    def _search(self, requests):
        self.batches.append(len(requests))
        time.sleep(self.delay)
        if any(r.query == "boom" for r in requests):
            raise RuntimeError(f"exploded on {SECRET_URL} reading {CACHE_PATH}")
        self.succeeded.update(r.query for r in requests)
        return [[Document(text=r.query)] for r in requests]


SECRET_URL = "http://user:pa55@10.9.8.7:9000/retrieve?key=abc"
CACHE_PATH = "/home/someone/.cache/zerosearch/search-cache.sqlite"


def post_many(url, queries):
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(len(queries)) as pool:
        return list(pool.map(lambda q: client.post(f"{url}/search", json={"requests": [{"query": q}]}), queries))


def test_an_engine_error_fails_only_its_own_request_and_tells_the_client_no_internals(caplog):
    engine = Fragile()
    with running_server(create_app(engine)) as url:
        queries = ["ok0", "ok1", "ok2", "boom", "ok3", "ok4", "ok5", "ok6"]
        responses = post_many(url, queries)
        for q, r in zip(queries, responses):
            if q == "boom":
                assert r.status_code == 500
                body = r.json()
                for leak in ("exploded", "10.9.8.7", "pa55", "/home/someone", "RuntimeError"):
                    assert leak not in r.text
                assert body["error_id"] in body["error"] and body["error_id"] in caplog.text
            else:
                assert r.status_code == 200 and r.json()["results"][0][0]["text"] == q
        assert httpx.post(f"{url}/search", json={"requests": [{"query": "after"}]}).status_code == 200
    assert max(engine.batches) > 1  # the failing request was batched with others, and they still succeeded
    assert "exploded" in caplog.text  # the details are in the server log
    assert max(engine.succeeded.values()) == 1  # and none of them ran twice


def test_metrics_hide_remote_hosts_without_a_token_and_credentials_always():
    from zerosearch.engines.remote import RemoteEngine

    engine = RemoteEngine(SECRET_URL)
    with running_server(create_app(engine)) as url:
        open_metrics = httpx.get(f"{url}/metrics").text
    with running_server(create_app(engine, token="T")) as url:
        guarded = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer T"}).text
    assert "10.9.8.7" not in open_metrics and "10.9.8.7" in guarded
    for text in (open_metrics, guarded):
        assert "pa55" not in text and "key=abc" not in text and "remote:http" in text


def test_identities_are_redacted_for_metrics():
    identity = "mixed:0.5:simulator:/data/models/qwen-sim@ab12:sft|remote:https://u:p@search.internal:8000/x?k=1"
    assert redact(identity, hide_hosts=True) == "mixed:0.5:simulator:.../qwen-sim@ab12:sft|remote:https://<redacted>"
    assert redact(identity, hide_hosts=False) == (
        "mixed:0.5:simulator:/data/models/qwen-sim@ab12:sft|remote:https://search.internal:8000/x"
    )


def test_a_default_k_above_max_k_is_refused_at_start_up():
    with pytest.raises(ConfigError, match="max_k"):
        Limits(default_k=200)
    with pytest.raises(ConfigError, match="max_k"):
        Limits(max_k=2)  # the /retrieve default (3) would be refused too
    with pytest.raises(ConfigError, match="max_queue"):
        create_app(Fragile(), max_queue=100)  # the largest request allowed could never be queued


def test_full_queue_answers_503_with_retry_after():
    engine = Fragile(delay=0.3)
    with running_server(create_app(engine, max_batch=1, max_queue=2, limits=Limits(max_queries=2))) as url:
        responses = post_many(url, [f"q{i}" for i in range(8)])
        codes = sorted(r.status_code for r in responses)
        assert 503 in codes and 200 in codes and set(codes) == {200, 503}
        assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 503)
        assert httpx.post(f"{url}/search", json={"requests": [{"query": "later"}]}).status_code == 200


def test_metrics_report_counts_latency_and_batches(url):
    httpx.post(f"{url}/search", json={"requests": [{"query": "trout"}]})
    metrics = httpx.get(f"{url}/metrics").json()
    assert metrics["requests"]["/search 200"] >= 1 and metrics["batches"]["calls"] >= 1
    assert {"p50_ms", "p90_ms", "p99_ms"} <= set(metrics["latency"]) and metrics["engine"].startswith("bm25:")
    assert metrics["meter"]["queries"] >= 1
