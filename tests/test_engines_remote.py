import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_engines_bm25 import write_corpus

from zerosearch.engines.base import EngineError, SearchRequest
from zerosearch.engines.bm25 import BM25Engine
from zerosearch.engines.remote import RemoteEngine
from zerosearch.serve.app import create_app, free_port, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remote")
    engine = BM25Engine(write_corpus(tmp / "corpus.jsonl"), index_dir=tmp / "index")
    with running_server(create_app(engine, token="tok")) as url:
        yield engine, url


def test_same_results_as_in_process_over_both_protocols(server):
    engine, url = server
    requests = [SearchRequest("glassworks workers", k=2), SearchRequest("trout fishing", k=3)]
    local = engine.search(requests)
    for remote_url in (url, f"{url}/retrieve"):
        got = RemoteEngine(remote_url, token="tok").search(requests)
        assert [[(d.id, d.title, d.text) for d in docs] for docs in got] == [
            [(d.id, d.title, d.text) for d in docs] for docs in local
        ]


def test_round_robin_skips_a_dead_url(server):
    _, url = server
    dead = f"http://127.0.0.1:{free_port()}"
    remote = RemoteEngine([dead, url], token="tok", retries=1, backoff_s=0.01)
    for _ in range(4):  # every call either starts on the live URL or falls over to it
        assert remote.search([SearchRequest("lantern festival", k=1)])[0][0].id == "p2"


class Always(BaseHTTPRequestHandler):
    status = 503
    hits = 0

    def do_POST(self):
        type(self).hits += 1
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "nope"}')

    def log_message(self, *args):
        pass


def serve_handler(handler):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def test_retries_are_bounded_with_backoff_and_end_in_a_clear_error():
    handler = type("Down", (Always,), {"status": 503, "hits": 0})
    httpd, url = serve_handler(handler)
    try:
        start = time.perf_counter()
        with pytest.raises(EngineError, match=r"failed after 3 tries: .*HTTP 503"):
            RemoteEngine(url, retries=2, backoff_s=0.05).search([SearchRequest("x")])
        assert handler.hits == 3 and time.perf_counter() - start >= 0.05 + 0.1
        bad = type("Bad", (Always,), {"status": 400, "hits": 0})
        httpd2, url2 = serve_handler(bad)
        with pytest.raises(EngineError, match="HTTP 400 nope"):
            RemoteEngine(url2, retries=5, backoff_s=0.05).search([SearchRequest("x")])
        assert bad.hits == 1  # a client error is not retried
        httpd2.shutdown()
    finally:
        httpd.shutdown()


def test_the_config_sends_a_bearer_token_from_an_environment_variable(server, monkeypatch):
    from zerosearch.config import EngineConfig
    from zerosearch.engines import make_engine
    from zerosearch.errors import ConfigError

    _, url = server
    cfg = EngineConfig(name="remote", urls=url, token_env="ZS_TEST_SEARCH_TOKEN", retries=0)
    monkeypatch.setenv("ZS_TEST_SEARCH_TOKEN", "tok")
    engine = make_engine(cfg)
    assert engine.search([SearchRequest("lantern festival", k=1)])[0][0].id == "p2"
    assert "tok" not in engine.identity()
    monkeypatch.setenv("ZS_TEST_SEARCH_TOKEN", "s3cr3t-zq")
    with pytest.raises(EngineError, match="401") as e:
        make_engine(cfg).search([SearchRequest("lantern festival", k=1)])
    assert "s3cr3t-zq" not in str(e.value)
    monkeypatch.delenv("ZS_TEST_SEARCH_TOKEN")
    with pytest.raises(ConfigError, match="ZS_TEST_SEARCH_TOKEN"):
        make_engine(cfg)
