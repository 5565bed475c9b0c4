"""The search-engine interface: a batch of requests in, a list of documents per request out, metered."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields


@dataclass
class Document:
    text: str
    title: str | None = None
    id: str | None = None
    score: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class SearchRequest:
    query: str
    k: int = 5
    # For the simulator: the question and gold answers of the trajectory that issued the query, and the mode.
    question: str | None = None
    answers: list[str] = field(default_factory=list)
    mode: str = "useful"  # "useful" | "noisy"


@dataclass
class Meter:
    """Counts for the cost report and the metrics endpoints."""

    calls: int = 0
    queries: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, queries: int, seconds: float, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        with self._lock:
            self.calls += 1
            self.queries += queries
            self.seconds += seconds
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def add_tokens(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Tokens of a generating engine, counted inside the call that `add` then records."""
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def to_dict(self) -> dict:
        with self._lock:  # not asdict: it deep-copies the lock, which cannot be copied
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


class EngineError(RuntimeError):
    """An engine could not answer (a server unreachable after the last retry, an API error)."""


class PartialResults(EngineError):
    """Some requests of a call failed. `results` holds the documents of the others (None where a request failed),
    so that a caller retries only the failed ones: a paid web query that succeeded is never paid for twice."""

    def __init__(self, message: str, results: list[list[Document] | None]):
        super().__init__(message)
        self.results = results


class SearchEngine(ABC):
    """Subclasses implement `_search`; `search` meters every call."""

    name: str = "engine"
    # True where results depend on the request's question, answers and mode (the simulator): the cache keys on them.
    conditioned: bool = False
    # False where the same request may rightly get other results later (a simulator whose weights train): never cached.
    cacheable: bool = True

    def __init__(self) -> None:
        self.meter = Meter()

    def identity(self) -> str:
        """What distinguishes this engine's results from another's (used in cache keys)."""
        return self.name

    def state_dict(self) -> dict:
        """What a checkpoint must hold for an exact resume (random state, counters); {} for stateless engines."""
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 - stateless engines have nothing to restore
        """Restore `state_dict()`'s state."""

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        if not requests:
            return []
        start = time.perf_counter()
        try:
            results = self._search(list(requests))
        except PartialResults as e:  # the answered queries were made (and, for a web API, paid for)
            self.meter.add(sum(r is not None for r in e.results), time.perf_counter() - start)
            raise
        self.meter.add(len(requests), time.perf_counter() - start)
        return results

    @abstractmethod
    def _search(self, requests: list[SearchRequest]) -> list[list[Document]]: ...
