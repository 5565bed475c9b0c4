"""The server against the clients that exist: Search-R1's `_batch_search`/`_passages2string` and verl's
search tool (`search_r1_like_utils.py`) speak `POST /retrieve`. The client below is ours, written to the
same wire shape: the request they send and the way they read `contents` (first line: title; rest: text).
"""

import httpx
import pytest
from test_serve_app import bm25  # noqa: F401 (fixture)

from zerosearch.engines.base import SearchEngine
from zerosearch.engines.simulator import SimulatorEngine, parse_documents
from zerosearch.serve.app import Curriculum, create_app, running_server


def retrieve(url: str, queries: list, **extra) -> list[list[tuple[str, str]]]:
    """What Search-R1 and verl post, and (title, text) per document as both read `contents`."""
    r = httpx.post(f"{url}/retrieve", json={"queries": queries, "topk": 3, "return_scores": True, **extra}, timeout=60)
    assert r.status_code == 200, r.text
    out = []
    for hits in r.json()["result"]:  # Search-R1 reads `["result"]` unguarded
        docs = []
        for hit in hits:
            lines = hit["document"]["contents"].split("\n")
            docs.append((lines[0], "\n".join(lines[1:])))
        out.append(docs)
    return out


def search_r1_text(docs: list[tuple[str, str]]) -> str:
    return "".join(f"Doc {i + 1}(Title: {title}) {text}\n" for i, (title, text) in enumerate(docs))


def verl_text(docs: list[tuple[str, str]]) -> str:
    return "\n\n".join(f"Doc {i + 1} (Title: {title})\n{text}" for i, (title, text) in enumerate(docs))


@pytest.fixture(scope="module")
def url(bm25):  # noqa: F811
    with running_server(create_app(bm25)) as url:  # default limits
        yield url


def test_an_empty_list_gets_an_empty_result(url):
    r = httpx.post(f"{url}/retrieve", json={"queries": [], "topk": 3, "return_scores": True})
    assert r.status_code == 200 and r.json() == {"result": []}
    r = httpx.post(f"{url}/search", json={"requests": []})
    assert r.status_code == 200 and r.json() == {"results": []}


def test_a_blank_query_gets_no_documents_and_the_others_are_served(url):
    results = retrieve(url, ["glassworks workers", "", "   \n", "trout fishing"])
    assert [len(docs) for docs in results] == [3, 0, 0, 3]
    assert results[0][0] == ("Kessel Glassworks", "The Kessel Glassworks employed four hundred workers in 1920.")
    r = httpx.post(f"{url}/search", json={"requests": [{"query": " "}, {"query": "lantern festival", "k": 1}]})
    assert r.status_code == 200 and [len(x) for x in r.json()["results"]] == [0, 1]
    assert httpx.get(f"{url}/metrics").json()["queries"]["blank"] >= 3


def test_a_search_r1_grpo_batch_of_2560_queries_is_accepted_with_the_default_limits(url):
    queries = [f"glassworks workers {i}" for i in range(2560)]
    results = retrieve(url, queries)
    assert len(results) == 2560 and all(docs[0][0] == "Kessel Glassworks" for docs in results)


def test_a_missing_null_or_zero_topk_means_the_default(url):
    for extra in ({"topk": None}, {"topk": 0}, {}):
        r = httpx.post(f"{url}/retrieve", json={"queries": ["trout fishing"], **extra})
        assert r.status_code == 200 and len(r.json()["result"][0]) == 3, extra
    r = httpx.post(f"{url}/search", json={"requests": [{"query": "trout fishing", "k": None}]})
    assert len(r.json()["results"][0]) == 5


def test_an_over_long_query_is_cut_not_refused(bm25):  # noqa: F811
    from zerosearch.serve.app import Limits

    with running_server(create_app(bm25, limits=Limits(max_query_chars=40))) as url:
        results = retrieve(url, ["glassworks workers " + "x" * 100, "trout fishing"])
        assert [len(docs) for docs in results] == [3, 3]
        assert httpx.get(f"{url}/metrics").json()["queries"]["cut"] == 1


SIMULATOR_OUTPUT = (
    "Doc 1: The Kessel Glassworks employed four hundred workers in 1920. It closed in 1961.\n"
    "Doc 2: Glassblowing came to the valley with the railway.\n"
    "Doc 3 (Title: Harrow Lake) A lake in the north.\n"
)


class Recorder(SearchEngine):
    """A simulator's output shape (no titles, padding to k) from the simulator's own parser; keeps each request."""

    name = "recorder"
    conditioned = True

    def __init__(self):
        super().__init__()
        self.requests = []

    def _search(self, requests):
        self.requests += requests
        return [parse_documents(SIMULATOR_OUTPUT, r.k)[0] for r in requests]


def test_simulator_documents_arrive_as_a_title_line_and_a_non_empty_text():
    with running_server(create_app(Recorder())) as url:
        docs = retrieve(url, ["glassworks"], topk=5)[0]
        plain = httpx.post(f"{url}/retrieve", json={"queries": ["glassworks"], "topk": 5}).json()["result"][0]
    assert len(docs) == 3 and len(plain) == 3  # the two padding documents are left out
    assert docs[0] == (
        "The Kessel Glassworks employed four hundred",
        "The Kessel Glassworks employed four hundred workers in 1920. It closed in 1961.",
    )
    assert docs[2] == ("Harrow Lake", "A lake in the north.")
    assert all(title.strip() and text.strip() for title, text in docs)
    for text in (search_r1_text(docs), verl_text(docs)):
        assert "(Title: )" not in text and "Title: Doc" not in text


def test_conditioning_fields_reach_the_engine_per_request_and_per_query():
    engine = Recorder()
    with running_server(create_app(engine)) as url:
        retrieve(
            url,
            ["q1", {"query": "q2", "golden_answers": ["B"], "mode": "useful"}, {"query": "q3", "question": "Other?"}],
            question="Q?",
            golden_answers=["A", "a"],
            mode="noisy",
        )
        retrieve(url, ["q4"], golden_answers="C")
    got = [(r.query, r.question, r.answers, r.mode) for r in engine.requests]
    assert got == [
        ("q1", "Q?", ["A", "a"], "noisy"),
        ("q2", "Q?", ["B"], "useful"),
        ("q3", "Other?", ["A", "a"], "noisy"),
        ("q4", None, ["C"], "useful"),  # no mode and no curriculum: useful
    ]


def test_noisy_mode_and_golden_answers_reach_a_real_tiny_simulator():
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    class Rendering(SimulatorEngine):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.prompts = []

        def render(self, request):
            self.prompts.append(super().render(request))
            return self.prompts[-1]

    model, tokenizer = load_model("tiny-random")
    engine = Rendering(HFGenerator(model, tokenizer), prompt="sft", max_new_tokens=8)
    with running_server(create_app(engine)) as url:
        body = {"queries": ["kessel glassworks"], "question": "How many worked there?", "golden_answers": ["400"]}
        r = httpx.post(f"{url}/retrieve", json={**body, "mode": "noisy"}, timeout=120)
        assert r.status_code == 200
    assert len(engine.prompts) == 1
    assert "generate five noisy documents" in engine.prompts[0] and "whose answer is 400" in engine.prompts[0]
    assert "How many worked there?" in engine.prompts[0]


def test_the_server_runs_the_curriculum_on_the_step_the_trainer_reports():
    engine = Recorder()
    curriculum = Curriculum(10, "linear", p_start=0.0, p_end=1.0, seed=3)
    with running_server(create_app(engine, curriculum=curriculum)) as url:
        retrieve(url, [f"a{i}" for i in range(5)])  # step 0: p = 0
        r = httpx.post(f"{url}/curriculum", json={"step": 10})
        assert r.status_code == 200 and r.json()["p_noisy"] == 1.0
        retrieve(url, [f"b{i}" for i in range(5)] + [{"query": "fixed", "mode": "useful"}])
        retrieve(url, ["c0"], step=0)  # a request's own step
        assert httpx.post(f"{url}/curriculum", json={"step": 50}).json()["p_noisy"] == 1.0  # clamped to m
        assert httpx.post(f"{url}/curriculum", json={"step": "x"}).status_code == 400
        metrics = httpx.get(f"{url}/metrics").json()
    modes = {r.query: r.mode for r in engine.requests}
    assert [modes[f"a{i}"] for i in range(5)] == ["useful"] * 5
    assert [modes[f"b{i}"] for i in range(5)] == ["noisy"] * 5 and modes["fixed"] == "useful"
    assert modes["c0"] == "useful"
    assert metrics["curriculum"]["drawn"] == {"useful": 6, "noisy": 5} and metrics["curriculum"]["seed"] == 3
    assert metrics["queries"]["noisy"] == 5 and metrics["queries"]["useful"] == 7


def test_curriculum_draws_are_seeded():
    def modes(seed):
        engine = Recorder()
        with running_server(create_app(engine, curriculum=Curriculum(10, "linear", 0.5, 0.5, seed=seed))) as url:
            retrieve(url, [f"q{i}" for i in range(40)])
        return [r.mode for r in engine.requests]

    assert modes(1) == modes(1) != modes(2)
    assert 5 < modes(1).count("noisy") < 35


def test_without_a_curriculum_the_step_routes_say_so(url):
    assert httpx.post(f"{url}/curriculum", json={"step": 1}).status_code == 404
    r = httpx.post(f"{url}/retrieve", json={"queries": ["a"], "step": 1})
    assert r.status_code == 400 and r.json()["field"] == "step"
