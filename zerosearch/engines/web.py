"""Web search APIs (Serper, SerpAPI): the real engine the paper trains against and compares costs with.

The API key comes from an environment variable and never appears in a log line or an error message.
Each provider's price per 1,000 queries is recorded for the cost report (see docs/engines.md).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from zerosearch.engines.base import Document, EngineError, PartialResults, SearchEngine, SearchRequest
from zerosearch.engines.remote import call_with_retries
from zerosearch.errors import UserError


@dataclass(frozen=True)
class Provider:
    base_url: str
    key_env: str
    price_per_1k: float  # USD per 1,000 queries, list price of the entry plan (override with price_per_1k=)


PROVIDERS = {
    "serper": Provider("https://google.serper.dev", "SERPER_API_KEY", 1.00),
    # SerpAPI-like default of the cost report: the paper's Table 8 ($586.70 for 64k searches).
    "serpapi": Provider("https://serpapi.com", "SERPAPI_API_KEY", 586.70 / 64),
}


class _RedactKey(logging.Filter):
    """httpx logs each request URL at INFO, and SerpAPI takes its key as a URL parameter."""

    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret in record.getMessage():
            record.msg, record.args = record.getMessage().replace(self.secret, "***"), None
        return True


class WebEngine(SearchEngine):
    name = "web"

    def __init__(
        self,
        provider: str = "serper",
        *,
        base_url: str | None = None,
        price_per_1k: float | None = None,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        concurrency: int = 8,
    ):
        super().__init__()
        if provider not in PROVIDERS:
            raise UserError(f"web provider must be one of {list(PROVIDERS)}, got {provider!r}")
        spec = PROVIDERS[provider]
        self._key = os.environ.get(spec.key_env, "")
        if not self._key:
            raise UserError(f"the {provider} web engine needs an API key in the environment variable {spec.key_env}")
        self.provider, self.base_url = provider, (base_url or spec.base_url).rstrip("/")
        self.price_per_1k = spec.price_per_1k if price_per_1k is None else price_per_1k
        self.retries, self.backoff_s, self.concurrency = retries, backoff_s, concurrency
        self.client = httpx.Client(timeout=timeout_s)
        logging.getLogger("httpx").addFilter(_RedactKey(self._key))

    def identity(self) -> str:
        return f"web:{self.provider}"

    def cost_usd(self) -> float:
        return self.meter.queries / 1000 * self.price_per_1k

    def _one(self, request: SearchRequest) -> list[Document]:
        def send(url: str) -> httpx.Response:
            if self.provider == "serper":
                body = {"q": request.query, "num": request.k}
                return self.client.post(f"{url}/search", json=body, headers={"X-API-KEY": self._key})
            params = {"engine": "google", "q": request.query, "num": request.k, "api_key": self._key}
            return self.client.get(f"{url}/search.json", params=params)

        field = "organic" if self.provider == "serper" else "organic_results"
        response = call_with_retries(
            send,
            [self.base_url],
            retries=self.retries,
            backoff_s=self.backoff_s,
            what=f"{self.provider} search",
            secret=self._key,
        )
        try:
            hits = response.json().get(field) or []
            return [
                Document(text=h.get("snippet", ""), title=h.get("title"), id=h.get("link")) for h in hits[: request.k]
            ]
        except (ValueError, AttributeError) as e:
            raise EngineError(f"{self.provider} search: unexpected response ({type(e).__name__})") from None

    def _search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        def attempt(request: SearchRequest) -> tuple[list[Document] | None, EngineError | None]:
            try:
                return self._one(request), None
            except EngineError as e:
                return None, e

        with ThreadPoolExecutor(min(self.concurrency, len(requests))) as pool:
            outcomes = list(pool.map(attempt, requests))
        errors = [e for _, e in outcomes if e is not None]
        if errors:
            raise PartialResults(
                f"{len(errors)} of {len(requests)} searches failed: {errors[0]}", [r for r, _ in outcomes]
            )
        return [r for r, _ in outcomes]
