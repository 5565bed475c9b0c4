"""A sqlite cache in front of any engine. Modes: `read-write` (look up, search the misses, store them),
`replay-only` (a miss is an error: a run replays exactly, offline), `off` (pass through).

Keys hold the engine's identity (for a simulator: its model's weights, prompt and sampling), the query and k,
and for a conditioned engine the mode, question and answers. An engine that is not `cacheable` (a simulator
sharing the weights that training changes) passes through in every mode. A sampling simulator's cached entry
is one sample: later identical requests get the same documents."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from zerosearch.engines.base import Document, SearchEngine, SearchRequest
from zerosearch.errors import UserError

MODES = ("off", "read-write", "replay-only")


class CacheMissError(UserError):
    """replay-only mode met a request the cache does not hold."""


class CachedEngine(SearchEngine):
    def __init__(self, engine: SearchEngine, path: str | Path, mode: str = "read-write"):
        super().__init__()
        if mode not in MODES:
            raise UserError(f"cache mode must be one of {list(MODES)}, got {mode!r}")
        self.engine, self.mode, self.path = engine, mode, Path(path)
        self.name, self.conditioned = engine.name, engine.conditioned
        self.hits = self.misses = 0
        self._lock = threading.Lock()  # one connection shared by the server's threads
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")  # several processes (trainers) can share one cache file
        self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, docs TEXT NOT NULL)")
        self._db.commit()

    def identity(self) -> str:
        return self.engine.identity()

    def state_dict(self) -> dict:
        return self.engine.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.engine.load_state_dict(state)

    def key(self, request: SearchRequest) -> str:
        parts = [self.engine.identity(), request.query, request.k]
        if self.engine.conditioned:
            parts += [request.mode, request.question or "", list(request.answers)]
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()

    def _search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        if self.mode == "off" or not self.engine.cacheable:
            return self.engine.search(requests)
        keys = [self.key(r) for r in requests]
        with self._lock:
            found = dict(
                self._db.execute(
                    f"SELECT key, docs FROM results WHERE key IN ({','.join('?' * len(keys))})", keys
                ).fetchall()
            )
        missing = [i for i, key in enumerate(keys) if key not in found]
        with self._lock:
            self.hits += len(requests) - len(missing)
            self.misses += len(missing)
        if missing and self.mode == "replay-only":
            r = requests[missing[0]]
            raise CacheMissError(
                f"replay-only cache {self.path} has no result for query {r.query!r} (k={r.k}, mode={r.mode})"
            )
        if missing:
            fresh = self.engine.search([requests[i] for i in missing])
            rows = [(keys[i], json.dumps([d.to_dict() for d in docs])) for i, docs in zip(missing, fresh)]
            with self._lock:
                self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", rows)
                self._db.commit()
            found.update(rows)
        return [[Document(**d) for d in json.loads(found[key])] for key in keys]

    def stats(self) -> dict:
        with self._lock:
            return {"mode": self.mode, "hits": self.hits, "misses": self.misses}
