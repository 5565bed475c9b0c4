import json
import logging
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import pytest
from test_engines_remote import serve_handler

from zerosearch.engines.base import EngineError, PartialResults, SearchRequest
from zerosearch.engines.web import WebEngine
from zerosearch.errors import UserError

KEY = "sk-test-9f8e7d6c5b4a"
# Recorded-format responses (fields as the providers document them; values shortened).
SERPER = {
    "searchParameters": {"q": "kessel glassworks", "type": "search", "engine": "google"},
    "organic": [
        {
            "title": "Kessel Glassworks - History",
            "link": "https://example.org/kessel",
            "snippet": "The Kessel Glassworks employed 400 workers.",
            "position": 1,
        },
        {
            "title": "Glass in Kessel",
            "link": "https://example.org/glass",
            "snippet": "Glassmaking came to Kessel in 1850.",
            "position": 2,
        },
        {"title": "Kessel", "link": "https://example.org/town", "snippet": "A river town.", "position": 3},
    ],
    "credits": 1,
}
SERPAPI = {
    "search_metadata": {"id": "abc", "status": "Success"},
    "search_parameters": {"engine": "google", "q": "kessel glassworks"},
    "organic_results": [
        {
            "position": 1,
            "title": "Kessel Glassworks - History",
            "link": "https://example.org/kessel",
            "displayed_link": "example.org",
            "snippet": "The Kessel Glassworks employed 400 workers.",
        },
    ],
}


class Replay(BaseHTTPRequestHandler):
    seen = []
    fail = 0  # answer this status instead (echoing the key, as a careless API might)
    fail_query = None  # ... only for this query (None: for every query)

    def _reply(self, payload):
        query = type(self).seen[-1][3]["q"]
        failing = type(self).fail and type(self).fail_query in (None, query)
        status = type(self).fail if failing else 200
        body = json.dumps({"error": f"bad key {KEY}"} if failing else payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # Serper
        type(self).seen.append(
            (
                "POST",
                self.path,
                self.headers.get("x-api-key"),
                json.loads(self.rfile.read(int(self.headers["content-length"]))),
            )
        )
        self._reply(SERPER)

    def do_GET(self):  # SerpAPI
        url = urlparse(self.path)
        type(self).seen.append(("GET", url.path, None, {k: v[0] for k, v in parse_qs(url.query).items()}))
        self._reply(SERPAPI)

    def log_message(self, *args):
        pass


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", KEY)
    monkeypatch.setenv("SERPAPI_API_KEY", KEY)
    handler = type("R", (Replay,), {"seen": [], "fail": 0, "fail_query": None})
    httpd, url = serve_handler(handler)
    yield handler, url
    httpd.shutdown()


def test_serper(api):
    handler, url = api
    engine = WebEngine("serper", base_url=url)
    docs = engine.search([SearchRequest("kessel glassworks", k=2)])[0]
    assert [(d.title, d.text, d.id) for d in docs] == [
        ("Kessel Glassworks - History", "The Kessel Glassworks employed 400 workers.", "https://example.org/kessel"),
        ("Glass in Kessel", "Glassmaking came to Kessel in 1850.", "https://example.org/glass"),
    ]
    assert handler.seen == [("POST", "/search", KEY, {"q": "kessel glassworks", "num": 2})]
    assert engine.price_per_1k == 1.0 and engine.cost_usd() == pytest.approx(0.001)


def test_serpapi_and_its_price(api):
    handler, url = api
    engine = WebEngine("serpapi", base_url=url)
    results = engine.search([SearchRequest("kessel glassworks", k=5), SearchRequest("other", k=1)])
    assert [len(r) for r in results] == [1, 1] and results[0][0].text == "The Kessel Glassworks employed 400 workers."
    params = sorted(s[3]["q"] for s in handler.seen)
    assert (
        params == ["kessel glassworks", "other"]
        and handler.seen[0][3]["api_key"] == KEY
        and handler.seen[0][3]["engine"] == "google"
    )
    assert engine.cost_usd() == pytest.approx(0.018334375)  # 2 queries at $586.70 / 64k (Table 8), by hand


def test_key_never_in_errors_or_logs(api, caplog):
    handler, url = api
    handler.fail = 401
    caplog.set_level(logging.DEBUG)
    for provider in ("serper", "serpapi"):
        with pytest.raises(EngineError) as e:
            WebEngine(provider, base_url=url, retries=0).search([SearchRequest("x")])
        assert "HTTP 401" in str(e.value) and KEY not in str(e.value) and "***" in str(e.value)
    handler.fail = 500
    with pytest.raises(EngineError) as e:
        WebEngine("serpapi", base_url=url, retries=1, backoff_s=0.01).search([SearchRequest("x")])
    assert "after 2 tries" in str(e.value) and KEY not in str(e.value)
    assert KEY not in caplog.text


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    with pytest.raises(UserError, match="SERPER_API_KEY"):
        WebEngine("serper")


def test_one_failed_query_keeps_the_answers_already_paid_for(api):
    handler, url = api
    handler.fail, handler.fail_query = 400, "broken"
    engine = WebEngine("serper", base_url=url, retries=0)
    with pytest.raises(PartialResults) as e:
        engine.search([SearchRequest("kessel glassworks", k=1), SearchRequest("broken", k=1)])
    assert e.value.results[1] is None and e.value.results[0][0].title == "Kessel Glassworks - History"
    assert engine.meter.queries == 1  # only the answered query is metered (and billed)
