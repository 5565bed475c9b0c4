"""Client of a search server: ours (`POST /search`) or a Search-R1-style retriever (`POST /retrieve`).

Several URLs are used round-robin; a failed call moves on to the next URL. Retries are bounded, with
exponential back-off, and the last failure raises a clear EngineError (the reference retries forever).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import httpx

from zerosearch.engines.base import Document, EngineError, SearchEngine, SearchRequest
from zerosearch.errors import UserError

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


def call_with_retries(
    send: Callable[[str], httpx.Response],
    urls: list[str],
    *,
    retries: int,
    backoff_s: float,
    what: str,
    secret: str = "",
) -> httpx.Response:
    """`send(url)` on the URLs in turn until one answers 2xx, at most `retries + 1` tries.

    A 4xx other than 429 is the caller's mistake and fails at once. Error messages name the host and
    status only: URLs and exception texts may carry an API key.
    """
    problems = []
    for attempt in range(retries + 1):
        url = urls[attempt % len(urls)]
        host = httpx.URL(url).netloc.decode()
        try:
            response = send(url)
        except httpx.HTTPError as e:
            problems.append(f"{host}: {type(e).__name__}")
        else:
            if response.is_success:
                return response
            detail = f"{host}: HTTP {response.status_code}"
            if response.status_code not in RETRYABLE_STATUS:
                raise EngineError(_redact(f"{what} failed: {detail} {_error_text(response)}", secret))
            problems.append(detail)
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit() and attempt < retries:
                time.sleep(min(float(retry_after), 30.0))
                continue
        if attempt < retries:
            time.sleep(min(backoff_s * 2**attempt, 30.0))
    raise EngineError(_redact(f"{what} failed after {retries + 1} tries: {'; '.join(problems)}", secret))


def _redact(message: str, secret: str) -> str:
    return message.replace(secret, "***") if secret else message


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("error") or body.get("detail") or "")[:300] if isinstance(body, dict) else ""
    except ValueError:
        return ""


class RemoteEngine(SearchEngine):
    """`urls` ending in `/retrieve` speak the Search-R1 protocol; others are our server's base URL."""

    name = "remote"

    def __init__(
        self,
        urls: list[str] | str,
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        token: str | None = None,
        conditioned: bool = False,
    ):
        super().__init__()
        urls = [u.strip().rstrip("/") for u in (urls.split(",") if isinstance(urls, str) else urls) if u.strip()]
        if not urls:
            raise UserError("the remote engine needs at least one server URL (engine.urls)")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise UserError(f"remote engine URL must start with http:// or https://, got {url!r}")
        self.urls, self.retries, self.backoff_s = urls, retries, backoff_s
        # Set when the server may be a simulator, so that the cache keys on mode/question/answers; a Search-R1
        # retriever never is.
        self.conditioned = conditioned and not urls[0].endswith("/retrieve")
        self._token = token or ""  # never logged: error messages are redacted with it
        self.client = httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {token}"} if token else {})
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def identity(self) -> str:
        return f"remote:{','.join(self.urls)}"

    def _search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        with self._lock:
            start = next(self._turn) % len(self.urls)
        urls = self.urls[start:] + self.urls[:start]
        if urls[0].endswith("/retrieve"):
            return self._retrieve(requests, urls)
        body = {
            "requests": [
                {"query": r.query, "k": r.k, "question": r.question, "answers": r.answers, "mode": r.mode}
                for r in requests
            ]
        }
        response = call_with_retries(
            lambda u: self.client.post(f"{u}/search", json=body),
            urls,
            retries=self.retries,
            backoff_s=self.backoff_s,
            what="remote search",
            secret=self._token,
        )
        try:
            return [[Document(**d) for d in docs] for docs in response.json()["results"]]
        except (ValueError, KeyError, TypeError) as e:
            raise EngineError(f"remote search: unexpected response from {urls[0]}: {e}") from None

    def _retrieve(self, requests: list[SearchRequest], urls: list[str]) -> list[list[Document]]:
        # Search-R1's retriever takes one topk per call: ask for the largest, keep each request's own k.
        body = {"queries": [r.query for r in requests], "topk": max(r.k for r in requests), "return_scores": True}
        response = call_with_retries(
            lambda u: self.client.post(u, json=body),
            urls,
            retries=self.retries,
            backoff_s=self.backoff_s,
            what="remote retrieve",
            secret=self._token,
        )
        try:
            results = []
            for r, hits in zip(requests, response.json()["result"], strict=True):
                docs = []
                for hit in hits[: r.k]:
                    doc = hit.get("document", hit)
                    title, _, text = doc["contents"].partition("\n")
                    docs.append(
                        Document(
                            text=text.strip(),
                            title=title.strip().strip('"') or None,
                            id=None if doc.get("id") is None else str(doc["id"]),
                            score=hit.get("score"),
                        )
                    )
                results.append(docs)
            return results
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise EngineError(f"remote retrieve: unexpected response from {urls[0]}: {e}") from None
