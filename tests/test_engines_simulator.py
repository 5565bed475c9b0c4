import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerosearch import prompts
from zerosearch.engines.base import SearchRequest
from zerosearch.engines.simulator import SimulatorEngine, parse_documents
from zerosearch.generation.base import Completion, Generator


def texts(docs):
    return [d.text for d in docs]


@pytest.mark.parametrize(
    "output",
    [
        "Doc 1: alpha\nDoc 2: beta\nDoc 3: gamma",
        "Document 1: alpha\nDocument 2: beta\nDocument 3: gamma",
        "1. alpha\n2. beta\n3. gamma",
        "1) alpha\n2) beta\n3) gamma",
        "[1] alpha\n[2] beta\n[3] gamma",
        "**Doc 1:** alpha\n**Doc 2:** beta\n**Doc 3:** gamma",
        "Here are the documents:\n\nDoc 1 - alpha\nDoc 2 - beta\nDoc 3 - gamma",
        "alpha\n\nbeta\n\ngamma",
    ],
)
def test_numbering_variants(output):
    docs, n = parse_documents(output, 3)
    assert texts(docs) == ["alpha", "beta", "gamma"] and n == 3


def test_titles_and_run_on_text():
    docs, n = parse_documents(
        "Doc 1 (Title: Kessel): a river town\nDoc 2(Title: Varnum) an astronomer\n\nQuery: next", 2
    )
    assert [(d.title, d.text) for d in docs] == [("Kessel", "a river town"), ("Varnum", "an astronomer")] and n == 2


def test_too_few_are_padded_and_too_many_cut():
    docs, n = parse_documents("Doc 1: only one", 5)
    assert n == 1 and len(docs) == 5 and texts(docs) == ["only one", "", "", "", ""]
    docs, n = parse_documents("\n".join(f"Doc {i}: d{i}" for i in range(1, 8)), 5)
    assert n == 5 and texts(docs) == ["d1", "d2", "d3", "d4", "d5"]
    assert parse_documents("", 5)[1] == 0 and parse_documents("Doc 1:\nDoc 2:   \n", 5)[1] == 0


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("Doc ument12345.:)([]*#-\n\tabc ()Title")) | st.characters()),
    st.integers(0, 8),
)
def test_never_raises_and_returns_exactly_k(text, k):
    docs, n = parse_documents(text, k)
    assert len(docs) == k and 0 <= n <= k
    assert all(d.text for d in docs[:n]) and not any(d.text for d in docs[n:])


class Echo(Generator):
    """Scripted: answers each prompt with five documents that quote the prompt's question, answer and mode."""

    tokenizer = None
    name = "echo"

    def __init__(self):
        self.calls = []

    def generate(self, prompts_, **kw):
        self.calls.append((list(prompts_), kw))
        out = []
        for p in prompts_:
            mode = "noisy" if "Noisy Output:" in p else "useful"
            asked = re.search(r'question: "(.*?)" whose answer is (.*)\.\n', p)
            tag = f"{mode}|{asked.group(1)}|{asked.group(2)}" if asked else f"{mode}|-|-"
            out.append(Completion(text="\n".join(f"Doc {i}: {tag}" for i in range(1, 6)), token_ids=[1, 2, 3]))
        return out


def test_each_request_keeps_its_own_question_answers_and_mode():
    engine = SimulatorEngine(Echo(), prompt="sft")
    requests = [
        SearchRequest("q0", question="Who founded Harrow?", answers=["Ilse Varnum"], mode="useful"),
        SearchRequest("q1", question="Where is Kessel?", answers=["Norland", "North"], mode="noisy", k=3),
        SearchRequest("q2", question="When?", answers=["1911"], mode="useful", k=1),
    ]
    results = engine.search(requests)
    assert [len(r) for r in results] == [5, 3, 1]
    assert results[0][0].text == "useful|Who founded Harrow?|Ilse Varnum"
    assert results[1][2].text == "noisy|Where is Kessel?|Norland"  # the first gold answer, as the reference
    assert results[2][0].text == "useful|When?|1911"
    assert engine.documents == 9 and engine.well_formed == 9
    assert engine.meter.completion_tokens == 9 and engine.meter.queries == 3


def test_fewshot_noisy_hides_the_answer_and_stops_at_a_new_query():
    gen = Echo()
    engine = SimulatorEngine(gen, prompt="fewshot")
    engine.search([SearchRequest("q", question="Who founded Harrow?", answers=["Ilse Varnum"], mode="noisy")])
    (prompt,), kw = gen.calls[0]
    assert "Ilse Varnum" not in prompt and "Who founded Harrow?" not in prompt and prompt.endswith("Query: q\nOutput:")
    assert kw["stop"] == ("\nQuery:",)


def test_sft_prompt_is_the_single_user_message_with_an_empty_system_message():
    from zerosearch.models import load_model

    _, tokenizer = load_model("tiny-random")
    gen = Echo()
    gen.tokenizer = tokenizer
    request = SearchRequest(
        "Varnum birthplace", question="Where was Ilse Varnum born?", answers=["Kessel"], mode="useful"
    )
    user = prompts.simulator_sft_prompt("Varnum birthplace", "Where was Ilse Varnum born?", ["Kessel"], "useful")
    expected = f"<|im_start|>system\n<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    assert SimulatorEngine(gen, prompt="sft").render(request) == expected


def test_real_model_meters_tokens_and_returns_k_documents():
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    model, tokenizer = load_model("tiny-random")
    gen = HFGenerator(model, tokenizer)
    engine = SimulatorEngine(gen, prompt="sft", max_new_tokens=7)
    requests = [SearchRequest("a query", question="Q?", answers=["A"]), SearchRequest("another", k=2, mode="noisy")]
    results = engine.search(requests)
    assert [len(r) for r in results] == [5, 2]
    assert engine.meter.prompt_tokens == sum(len(gen.encode(engine.render(r))) for r in requests)
    assert 2 <= engine.meter.completion_tokens <= 14  # at most 7 each; eos may end one early


def test_the_config_samples_the_simulator_seeded_with_a_new_seed_per_call_and_resumes():
    from zerosearch.config import EngineConfig
    from zerosearch.engines import make_engine

    cfg = EngineConfig(name="simulator", simulator_prompt="sft", simulator_temperature=0.8, simulator_top_p=0.9)
    gen = Echo()
    engine = make_engine(cfg, generator=gen, seed=5)
    for _ in range(3):
        engine.search([SearchRequest("q", question="Q", answers=["A"])])
    assert [(kw["temperature"], kw["top_p"], kw["seed"]) for _, kw in gen.calls] == [
        (0.8, 0.9, 5),
        (0.8, 0.9, 5 + 1_000_003),
        (0.8, 0.9, 5 + 2_000_006),
    ]
    state = engine.state_dict()
    resumed = make_engine(cfg, generator=Echo(), seed=5)
    resumed.load_state_dict(state)
    resumed.search([SearchRequest("q")])
    assert resumed.generator.calls[0][1]["seed"] == 5 + 3_000_009


def test_sampled_documents_differ_between_calls_on_a_real_model():
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    gen = HFGenerator(*load_model("tiny-random"))
    engine = SimulatorEngine(gen, prompt="sft", max_new_tokens=12, temperature=1.0, seed=0)
    request = [SearchRequest("a query", question="Q?", answers=["A"])]
    first, second = engine.search(request), engine.search(request)
    assert first != second  # the same query, in the same mode, in two calls (a group's samples): other documents
    again = SimulatorEngine(gen, prompt="sft", max_new_tokens=12, temperature=1.0, seed=0)
    assert again.search(request) == first  # and seeded


def test_a_simulator_server_that_is_down_is_an_engine_error_that_the_rollout_survives():
    import socket

    from test_rollout_masks import ScriptedPolicy

    from zerosearch.config import RolloutConfig
    from zerosearch.data.formats import QAExample
    from zerosearch.engines.base import EngineError
    from zerosearch.generation.openai import OpenAIGenerator
    from zerosearch.models import load_model
    from zerosearch.rollout import run_rollouts

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = OpenAIGenerator(f"http://127.0.0.1:{port}", "sim", None, retries=0, timeout_s=2)
    engine = SimulatorEngine(down, prompt="fewshot")
    with pytest.raises(EngineError, match="simulator: no OpenAI-compatible server answered"):
        engine.search([SearchRequest("q")])
    tok = load_model("tiny-random")[1]
    policy = ScriptedPolicy(tok, {"Where is Paris": ["<search> paris </search>", "<answer> France </answer>"]})
    examples = [QAExample("a", "Where is Paris", ["France"])]
    (t,) = run_rollouts(policy, engine, examples, RolloutConfig(search_retries=0))
    assert t.stop_reason == "search_error"


def test_noisy_requests_ban_the_gold_answers_and_useful_ones_do_not():
    from zerosearch.engines.simulator import banned_strings

    useful = SearchRequest(query="q", k=3, question="Q", answers=["New york", " "], mode="useful")
    noisy = SearchRequest(query="q", k=3, question="Q", answers=["New york", " "], mode="noisy")
    assert banned_strings(useful) == []
    assert set(banned_strings(noisy)) == {"New york", "new york", "New York"}


class Leaky(Generator):
    """Scripted, without bans: its first `leaks` draws of a prompt spell the gold answer, later ones do not."""

    tokenizer = None
    name = "leaky"

    def __init__(self, leaks: int):
        self.leaks, self.draws, self.seeds = leaks, {}, []

    def generate(self, prompts_, **kw):
        self.seeds.append(kw["seed"])
        out = []
        for p in prompts_:
            self.draws[p] = self.draws.get(p, 0) + 1
            answer = re.search(r"whose answer is (.*)\.\n", p).group(1)
            text = answer if self.draws[p] <= self.leaks else "an unrelated place"
            out.append(Completion(text=f"Doc 1: {text} draw {self.draws[p]}", token_ids=[1]))
        return out


@pytest.mark.parametrize("leaks, kept_draw", [(2, 3), (99, 5)])
def test_a_server_without_bans_draws_a_leaking_noisy_output_again(leaks, kept_draw):
    from zerosearch.engines.simulator import RESAMPLES

    gen = Leaky(leaks)
    engine = SimulatorEngine(gen, prompt="sft", temperature=0.7, seed=3, ban_answers=True)
    useful = SearchRequest("q", k=1, question="Where?", answers=["Norland"], mode="useful")
    noisy = SearchRequest("q", k=1, question="Where?", answers=["Norland"], mode="noisy")
    docs = engine.search([useful, noisy])
    assert docs[0][0].text == "Norland draw 1"  # a useful output is never drawn again
    assert docs[1][0].text.endswith(f"draw {kept_draw}") and kept_draw <= RESAMPLES + 1
    assert ("Norland" in docs[1][0].text) == (leaks >= kept_draw)  # the last draw is kept when all leak
    assert len(set(gen.seeds)) == len(gen.seeds)  # each draw its own seed
    assert engine.meter.completion_tokens == 1 + kept_draw

    plain = SimulatorEngine(Leaky(leaks), prompt="sft", temperature=0.7, seed=3)  # no ban asked: no redraw
    assert "Norland" in plain.search([noisy])[0][0].text
