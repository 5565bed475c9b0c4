import threading

import pytest

from zerosearch.engines.base import Document, SearchEngine, SearchRequest
from zerosearch.engines.cache import CachedEngine, CacheMissError


class Counting(SearchEngine):
    """Answers `query#n` where n counts the queries it has answered, so a cache hit is visible."""

    name = "counting"

    def __init__(self, conditioned=False):
        super().__init__()
        self.conditioned, self.answered = conditioned, 0
        self._lock = threading.Lock()

    def _search(self, requests):
        out = []
        for r in requests:
            with self._lock:
                self.answered += 1
                n = self.answered
            out.append([Document(text=f"{r.query}#{n}", title="t", id=str(i), score=1.0) for i in range(r.k)])
        return out


def test_hits_misses_and_persistence(tmp_path):
    path = tmp_path / "c.sqlite"
    cached = CachedEngine(Counting(), path)
    first = cached.search([SearchRequest("a", k=2), SearchRequest("b", k=1)])
    again = cached.search([SearchRequest("b", k=1), SearchRequest("a", k=2), SearchRequest("a", k=3)])
    assert first[0][0].text == "a#1" and again[1] == first[0] and again[0] == first[1]
    assert again[2][0].text == "a#3"  # another k is another key
    assert cached.stats() == {"mode": "read-write", "hits": 2, "misses": 3}
    assert cached.engine.meter.queries == 3 and cached.meter.queries == 5  # the inner meter counts only misses
    reopened = CachedEngine(Counting(), path, "replay-only")
    assert reopened.search([SearchRequest("a", k=2)]) == [first[0]]


def test_replay_only_miss_is_a_clear_error(tmp_path):
    cached = CachedEngine(Counting(), tmp_path / "c.sqlite", "replay-only")
    with pytest.raises(CacheMissError, match="'unseen'"):
        cached.search([SearchRequest("unseen")])
    assert cached.engine.answered == 0


def test_simulator_keys_include_mode_and_question(tmp_path):
    cached = CachedEngine(Counting(conditioned=True), tmp_path / "c.sqlite")
    base = dict(query="q", question="Q1", answers=["A"])
    cached.search([SearchRequest(**base, mode="useful")])
    cached.search(
        [
            SearchRequest(**base, mode="noisy"),
            SearchRequest("q", question="Q2", answers=["A"]),
            SearchRequest(**base, mode="useful"),
        ]
    )
    assert cached.stats()["hits"] == 1 and cached.engine.answered == 3
    plain = CachedEngine(Counting(), tmp_path / "d.sqlite")
    plain.search([SearchRequest(**base, mode="useful")])
    plain.search([SearchRequest(**base, mode="noisy")])  # a retriever ignores mode: same key
    assert plain.stats()["hits"] == 1


def test_off_passes_through(tmp_path):
    cached = CachedEngine(Counting(), tmp_path / "c.sqlite", "off")
    cached.search([SearchRequest("a")])
    assert cached.search([SearchRequest("a")])[0][0].text == "a#2"


def test_thread_safe(tmp_path):
    cached = CachedEngine(Counting(), tmp_path / "c.sqlite")
    errors = []

    def worker(w):
        try:
            for i in range(50):
                assert cached.search([SearchRequest(f"q{i % 10}", k=1)])[0][0].text.startswith(f"q{i % 10}#")
        except Exception as e:  # collected: an assert in a thread would not fail the test
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stats = cached.stats()
    assert stats["hits"] + stats["misses"] == 400 and stats["misses"] >= 10


def simulator(label, model_id):
    from zerosearch.engines.simulator import SimulatorEngine
    from zerosearch.generation.base import Completion, Generator

    class Fixed(Generator):
        name = "hf"  # every in-process back-end has this name: the key must not depend on it

        def __init__(self):
            self.label = label

        def generate(self, prompts_, **kw):
            return [Completion(text=f"Doc 1: {self.label}", token_ids=[1]) for _ in prompts_]

    return SimulatorEngine(Fixed(), prompt="fewshot", model_id=model_id)


def test_simulator_keys_on_the_models_identity_and_a_changing_model_is_never_cached(tmp_path):
    path = tmp_path / "c.sqlite"
    request = [SearchRequest("q", question="Q", answers=["A"])]
    assert CachedEngine(simulator("from A", "model-a@1"), path).search(request)[0][0].text == "from A"
    assert CachedEngine(simulator("from B", "model-b@1"), path).search(request)[0][0].text == "from B"
    assert CachedEngine(simulator("again", "model-a@1"), path).search(request)[0][0].text == "from A"  # a hit
    policy = CachedEngine(simulator("step 1", None), path)  # the policy's weights: they change in training
    assert policy.search(request)[0][0].text == "step 1"
    policy.engine.generator.label = "step 2"  # an optimizer step later
    assert policy.search(request)[0][0].text == "step 2" and policy.stats()["misses"] == 0


def test_make_engine_never_caches_a_simulator_that_shares_the_policy(tmp_path):
    from zerosearch.config import EngineConfig
    from zerosearch.engines import make_engine
    from zerosearch.models import model_identity

    cfg = EngineConfig(
        name="simulator", simulator_model="tiny-random", cache="read-write", cache_path=str(tmp_path / "c.sqlite")
    )
    own = make_engine(cfg)
    assert own.engine.cacheable and model_identity("tiny-random") in own.identity()
    shared = make_engine(cfg, generator=own.engine.generator)
    assert not shared.engine.cacheable


def test_a_remote_simulator_server_is_keyed_on_mode_and_question(tmp_path):
    from zerosearch.config import EngineConfig
    from zerosearch.engines import make_engine

    cfg = EngineConfig(name="remote", urls="http://127.0.0.1:9", cache="read-write", cache_path=str(tmp_path / "c"))
    useful, noisy = SearchRequest("q", mode="useful"), SearchRequest("q", mode="noisy")
    conditioned = make_engine(cfg)
    assert conditioned.key(useful) != conditioned.key(noisy)
    plain = make_engine(EngineConfig(**{**cfg.__dict__, "remote_conditioned": False}))
    assert plain.key(useful) == plain.key(noisy)
    retrieve = make_engine(EngineConfig(**{**cfg.__dict__, "urls": "http://127.0.0.1:9/retrieve"}))
    assert retrieve.key(useful) == retrieve.key(noisy)  # a Search-R1 retriever ignores them


def test_a_bf16_simulator_runs_in_bf16_and_is_keyed_apart_from_fp32(tmp_path):
    import torch

    from zerosearch.config import EngineConfig
    from zerosearch.engines import make_engine

    cfg = EngineConfig(
        name="simulator",
        simulator_model="tiny-random",
        simulator_max_tokens=8,
        cache="read-write",
        cache_path=str(tmp_path / "c.sqlite"),
    )
    fp32, bf16 = make_engine(cfg), make_engine(EngineConfig(**{**cfg.__dict__, "simulator_dtype": "bf16"}))
    assert next(bf16.engine.generator.model.parameters()).dtype == torch.bfloat16
    request = SearchRequest("q", k=2, question="q?", answers=["a"], mode="useful")
    assert fp32.key(request) != bf16.key(request)  # another model's outputs are never served from the cache
    assert len(bf16.search([request])[0]) == 2  # a real bf16 forward pass writes the documents
