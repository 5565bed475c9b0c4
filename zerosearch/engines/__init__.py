"""Search engines behind one batched, metered interface, and `make_engine` to build one from a config
(see docs/engines.md)."""

from __future__ import annotations

import os

from zerosearch.config import EngineConfig, ModelConfig, cache_dir
from zerosearch.engines.base import Document, EngineError, Meter, SearchEngine, SearchRequest
from zerosearch.errors import ConfigError

__all__ = ["Document", "EngineError", "Meter", "SearchEngine", "SearchRequest", "make_engine"]


def _token(env: str) -> str | None:
    if not env:
        return None
    token = os.environ.get(env, "")
    if not token:
        raise ConfigError(f"engine.token_env names the environment variable {env}, which is not set or empty")
    return token


def _make(name: str, cfg: EngineConfig, generator=None, seed: int = 0) -> SearchEngine:
    if name == "bm25":
        from zerosearch.engines.bm25 import BM25Engine

        return BM25Engine(cfg.corpus)
    if name == "dense":
        from zerosearch.engines.dense import DenseEngine

        return DenseEngine(
            cfg.corpus,
            cfg.embedding_model,
            index_path=cfg.index_path or None,
            query_prefix=cfg.query_prefix,
            passage_prefix=cfg.passage_prefix,
            pooling=cfg.pooling or None,
        )
    if name == "simulator":
        from zerosearch.engines.simulator import SimulatorEngine

        model_id = None  # a generator passed in is the policy's: its weights change, so never cache it
        if generator is None:
            from zerosearch.generation import make_generator
            from zerosearch.models import model_identity

            backend = "openai" if cfg.simulator_base_url else "hf"
            generator = make_generator(
                ModelConfig(
                    spec=cfg.simulator_model,
                    backend=backend,
                    base_url=cfg.simulator_base_url,
                    dtype=cfg.simulator_dtype,
                ),
                logprobs=False,
            )
            model_id = model_identity(cfg.simulator_model)
            if backend == "hf" and cfg.simulator_dtype != "fp32":  # other weights, other outputs: other cache keys
                model_id += f"@{cfg.simulator_dtype}"
        return SimulatorEngine(
            generator,
            prompt=cfg.simulator_prompt,
            max_new_tokens=cfg.simulator_max_tokens,
            temperature=cfg.simulator_temperature,
            top_p=cfg.simulator_top_p,
            seed=seed,
            model_id=model_id,
            ban_answers=cfg.simulator_ban_answers,
        )
    if name == "web":
        from zerosearch.engines.web import WebEngine

        return WebEngine(cfg.web_provider, base_url=cfg.urls or None, timeout_s=cfg.timeout_s, retries=cfg.retries)
    if name == "remote":
        from zerosearch.engines.remote import RemoteEngine

        return RemoteEngine(
            cfg.urls,
            timeout_s=cfg.timeout_s,
            retries=cfg.retries,
            token=_token(cfg.token_env),
            conditioned=cfg.remote_conditioned,
        )
    raise ConfigError(f"engine.name: unknown engine {name!r}")


def _cached(engine: SearchEngine, cfg: EngineConfig) -> SearchEngine:
    if cfg.cache == "off":
        return engine
    from zerosearch.engines.cache import CachedEngine

    return CachedEngine(engine, cfg.cache_path or cache_dir() / "search-cache.sqlite", cfg.cache)


def make_engine(cfg: EngineConfig, generator=None, *, seed: int = 0) -> SearchEngine:
    """The engine a config names; `generator` serves the simulator (else one is loaded from simulator_model).

    A `generator` passed in is taken to be the policy's (weights that training changes): that simulator is never
    cached. `seed` seeds the simulator's sampling and mixed's routing. With a cache, `mixed` caches its two
    engines (not its random routing). Engines with random state checkpoint it with `state_dict()`.
    """
    if cfg.name == "mixed":
        from zerosearch.engines.mixed import MixedEngine

        if cfg.real_engine in ("simulator", "mixed"):
            raise ConfigError(
                f"engine.real_engine must be a real engine (bm25, dense, web, remote), got {cfg.real_engine!r}"
            )
        simulator = _cached(_make("simulator", cfg, generator, seed), cfg)
        return MixedEngine(simulator, _cached(_make(cfg.real_engine, cfg), cfg), cfg.p_real, seed=seed)
    return _cached(_make(cfg.name, cfg, generator, seed), cfg)
