"""Protocol parsing: hand-checked cases, and a property test over >= 100k random and adversarial strings."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerosearch.rollout.protocol import Action, parse_action


def test_hand_checked_cases():
    assert parse_action("<think>x</think><search> capital of France </search>") == Action("search", "capital of France")
    assert parse_action("<answer> Paris </answer>") == Action("answer", "Paris")
    assert parse_action("no tags at all") == Action("invalid")
    assert parse_action("<search> unclosed") == Action("invalid")
    assert parse_action("</search> closed before opened") == Action("invalid")
    assert parse_action("<search>   </search>") == Action("invalid")  # nothing to search
    assert parse_action("<answer></answer>") == Action("answer", "")
    # first complete action wins: the one whose closing tag comes first
    assert parse_action("<answer> a <search> q </search> </answer>") == Action("search", "q")
    assert parse_action("<search> q <answer> a </answer>") == Action("answer", "a")
    assert parse_action("<answer>1</answer><answer>2</answer>") == Action("answer", "1")
    assert parse_action("<search> a <search> b </search>") == Action("search", "b")
    assert parse_action("</answer><answer> late </answer>") == Action("answer", "late")
    assert parse_action("<search>" + "x" * 1000 + "</search>", max_query_chars=10) == Action("search", "x" * 10)
    assert parse_action("<search> Zürich 東京 🙂 </search>") == Action("search", "Zürich 東京 🙂")


TAGS = [
    "<search>",
    "</search>",
    "<answer>",
    "</answer>",
    "<search",
    "search>",
    "</",
    "<",
    ">",
    "<<search>>",
    "<information>",
    "</information>",
    "<think>",
    "</think>",
    "<SEARCH>",
    "\n",
    " ",
]
pieces = st.one_of(st.sampled_from(TAGS), st.text(max_size=12))
adversarial = st.lists(pieces, max_size=30).map("".join)
ALPHABET = "ab xyz?.\n\t\u00e9\u00fc\u6771\u4eac\U0001f642\u200b\x00\ufffd"


def check(text: str, cap: int) -> None:
    action = parse_action(text, max_query_chars=cap)
    assert action.kind in ("search", "answer", "invalid")
    if action.kind == "invalid":
        assert action.content == ""
    else:
        assert action.content == action.content.strip() and action.content in text
        assert f"</{action.kind}>" in text
    if action.kind == "search":
        assert 0 < len(action.content) <= cap


@settings(max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(text=st.one_of(adversarial, st.text(max_size=40)), cap=st.integers(1, 400))
def test_never_raises_on_hypothesis_strings(text, cap):
    check(text, cap)


@settings(max_examples=1_000, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1), cap=st.integers(1, 400))
def test_never_raises_on_100k_seeded_adversarial_strings(seed, cap):
    """1,000 hypothesis examples x 100 strings each, expanded by a seeded RNG (hypothesis' own string
    generation costs ~1 ms an example; this keeps 100k strings to seconds, and a failure still shrinks to a seed)."""
    rng = random.Random(seed)
    for _ in range(100):
        parts = [
            rng.choice(TAGS) if rng.random() < 0.5 else "".join(rng.choices(ALPHABET, k=rng.randint(0, 8)))
            for _ in range(rng.randint(0, 24))
        ]
        check("".join(parts), cap)


def test_huge_inputs_are_linear():
    # Many openings and no closing (a backtracking regex is quadratic here), and many closings before openings.
    check("<search>" * 200_000 + "x", 300)
    check("</search>" * 200_000 + "<search> q </search>", 300)
    assert parse_action("<answer>" * 100_000 + " y </answer>") == Action("answer", "y")
