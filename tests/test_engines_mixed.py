from zerosearch.engines.base import Document, SearchEngine, SearchRequest
from zerosearch.engines.mixed import MixedEngine


class Named(SearchEngine):
    def __init__(self, name):
        super().__init__()
        self.name = name

    def _search(self, requests):
        return [[Document(text=f"{self.name}:{r.query}")] for r in requests]


def route(p, seed=0, n=200):
    engine = MixedEngine(Named("sim"), Named("real"), p, seed=seed)
    return [docs[0].text for docs in engine.search([SearchRequest(str(i)) for i in range(n)])], engine


def test_extremes_and_order():
    assert all(t == f"sim:{i}" for i, t in enumerate(route(0.0)[0]))
    assert all(t == f"real:{i}" for i, t in enumerate(route(1.0)[0]))


def test_seeded_and_proportional():
    texts, engine = route(0.3, n=2000)
    assert texts == route(0.3, n=2000)[0] and texts != route(0.3, seed=1, n=2000)[0]
    real = sum(t.startswith("real") for t in texts)
    assert 500 <= real <= 700 and engine.routed == {"real": real, "simulator": 2000 - real}
    assert all(t.endswith(f":{i}") for i, t in enumerate(texts))
    assert engine.simulator.meter.calls == 1 and engine.real.meter.calls == 1  # one call per engine per batch


def test_state_dict_resumes_the_routing_exactly():
    import json

    requests = [SearchRequest(str(i)) for i in range(50)]
    straight = MixedEngine(Named("sim"), Named("real"), 0.5, seed=7)
    straight.search(requests)
    state = json.loads(json.dumps(straight.state_dict()))  # what a checkpoint stores
    expected = straight.search(requests)
    resumed = MixedEngine(Named("sim"), Named("real"), 0.5, seed=7)  # a fresh process: the RNG starts over
    assert resumed.search(requests) != expected
    resumed.load_state_dict(state)
    assert resumed.search(requests) == expected and resumed.routed == straight.routed
