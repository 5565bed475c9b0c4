"""Real and simulated search in one run: each request goes to the real engine with probability `p_real`
(seeded draws), else to the simulator. A real engine ignores the request's useful/noisy mode."""

from __future__ import annotations

import random
import threading

from zerosearch.engines.base import Document, SearchEngine, SearchRequest


class MixedEngine(SearchEngine):
    name = "mixed"
    conditioned = True

    def __init__(self, simulator: SearchEngine, real: SearchEngine, p_real: float, seed: int = 0):
        super().__init__()
        if not 0.0 <= p_real <= 1.0:
            raise ValueError(f"p_real must be in [0, 1], got {p_real!r}")
        self.simulator, self.real, self.p_real = simulator, real, p_real
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self.routed = {"simulator": 0, "real": 0}

    def state_dict(self) -> dict:
        """The routing RNG and counters (JSON-friendly), and the two engines' own state: a resumed run routes
        exactly as the uninterrupted one would have."""
        version, internal, gauss = self.rng.getstate()
        with self._lock:
            return {
                "rng": [version, list(internal), gauss],
                "routed": dict(self.routed),
                "simulator": self.simulator.state_dict(),
                "real": self.real.state_dict(),
            }

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        with self._lock:
            self.rng.setstate((version, tuple(internal), gauss))
            self.routed = dict(state["routed"])
        self.simulator.load_state_dict(state.get("simulator", {}))
        self.real.load_state_dict(state.get("real", {}))

    def identity(self) -> str:
        return f"mixed:{self.p_real}:{self.simulator.identity()}|{self.real.identity()}"

    def _search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        with self._lock:
            to_real = [self.rng.random() < self.p_real for _ in requests]
            self.routed["real"] += sum(to_real)
            self.routed["simulator"] += len(requests) - sum(to_real)
        results: list[list[Document]] = [[] for _ in requests]
        for engine, flag in ((self.real, True), (self.simulator, False)):
            chosen = [i for i, f in enumerate(to_real) if f == flag]
            for i, docs in zip(chosen, engine.search([requests[i] for i in chosen])):
                results[i] = docs
        return results
