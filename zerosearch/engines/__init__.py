"""Search engines behind one batched, metered interface, and `make_engine` to build one from a config."""

from __future__ import annotations

from zerosearch.config import EngineConfig, ModelConfig, cache_dir
from zerosearch.engines.base import Document, EngineError, Meter, SearchEngine, SearchRequest
from zerosearch.errors import ConfigError

__all__ = ["Document", "EngineError", "Meter", "SearchEngine", "SearchRequest", "make_engine"]


def _make(name: str, cfg: EngineConfig, generator=None) -> SearchEngine:
    if name == "bm25":
        from zerosearch.engines.bm25 import BM25Engine

        return BM25Engine(cfg.corpus)
    if name == "dense":
        from zerosearch.engines.dense import DenseEngine

        return DenseEngine(cfg.corpus, cfg.embedding_model)
    if name == "simulator":
        from zerosearch.engines.simulator import SimulatorEngine

        if generator is None:
            from zerosearch.generation import make_generator

            backend = "openai" if cfg.simulator_base_url else "hf"
            generator = make_generator(
                ModelConfig(spec=cfg.simulator_model, backend=backend, base_url=cfg.simulator_base_url)
            )
        return SimulatorEngine(generator, prompt=cfg.simulator_prompt, max_new_tokens=cfg.simulator_max_tokens)
    if name == "web":
        from zerosearch.engines.web import WebEngine

        return WebEngine(cfg.web_provider, base_url=cfg.urls or None, timeout_s=cfg.timeout_s, retries=cfg.retries)
    if name == "remote":
        from zerosearch.engines.remote import RemoteEngine

        return RemoteEngine(cfg.urls, timeout_s=cfg.timeout_s, retries=cfg.retries)
    raise ConfigError(f"engine.name: unknown engine {name!r}")


def _cached(engine: SearchEngine, cfg: EngineConfig) -> SearchEngine:
    if cfg.cache == "off":
        return engine
    from zerosearch.engines.cache import CachedEngine

    return CachedEngine(engine, cfg.cache_path or cache_dir() / "search-cache.sqlite", cfg.cache)


def make_engine(cfg: EngineConfig, generator=None) -> SearchEngine:
    """The engine a config names; `generator` serves the simulator (else one is loaded from simulator_model).

    With a cache, `mixed` caches its two engines (not its random routing).
    """
    if cfg.name == "mixed":
        from zerosearch.engines.mixed import MixedEngine

        if cfg.real_engine in ("simulator", "mixed"):
            raise ConfigError(
                f"engine.real_engine must be a real engine (bm25, dense, web, remote), got {cfg.real_engine!r}"
            )
        simulator = _cached(_make("simulator", cfg, generator), cfg)
        return MixedEngine(simulator, _cached(_make(cfg.real_engine, cfg), cfg), cfg.p_real)
    return _cached(_make(cfg.name, cfg, generator), cfg)
