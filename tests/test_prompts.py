from zerosearch.engines.base import Document
from zerosearch.prompts import (
    INVALID_ACTION,
    format_documents,
    observation,
    policy_prompt,
    simulator_fewshot_prompt,
    simulator_sft_prompt,
)

# Verbatim from the reference, Alibaba-NLP/ZeroSearch llm_agent/generation.py (`search_simulate_sft`), on which the
# released simulators were trained (there an f-string; `ground_truth` is `ground_truth[index][0]`, the first gold
# answer).
REFERENCE_USEFUL = """You are the Google search engine.
Given a query, you need to generate five useful documents for the query.

The user is trying to answer the question: "{problem}" whose answer is {ground_truth}.
Each document should contain about 30 words, and these documents should contain useful information.

Query: {query}
Useful Output:
"""
REFERENCE_NOISY = """You are the Google search engine.
Given a query, you need to generate five noisy documents for the query.

The user is trying to answer the question: "{problem}" whose answer is {ground_truth}.
Each document should contain about 30 words, and these documents should contain noisy information.

Query: {query}
Noisy Output:
"""


def reference(template: str, query: str, problem: str, golden_answers: list[str]) -> str:
    return template.format(problem=problem, ground_truth=golden_answers[0], query=query)


def test_sft_prompt_is_the_reference_character_for_character():
    got = simulator_sft_prompt("q", "Q", ["a", "b"], "useful")
    assert got == reference(REFERENCE_USEFUL, "q", "Q", ["a", "b"])
    assert got.endswith("Query: q\nUseful Output:\n") and '"Q" whose answer is a.\n' in got
    assert simulator_sft_prompt("q", "Q", ["a", "b"], "noisy") == reference(REFERENCE_NOISY, "q", "Q", ["a", "b"])
    args = ("hamlet author", "who wrote hamlet?", ["William Shakespeare", "Shakespeare"])
    for mode, template in (("useful", REFERENCE_USEFUL), ("noisy", REFERENCE_NOISY)):
        assert simulator_sft_prompt(*args, mode) == reference(template, *args)
    assert simulator_sft_prompt("q", "Q", "a", "useful") == reference(REFERENCE_USEFUL, "q", "Q", ["a"])


def test_fewshot_noisy_hides_question_and_answer():
    noisy = simulator_fewshot_prompt("q text", "SECRET QUESTION", ["SECRET ANSWER"], "noisy")
    assert "SECRET" not in noisy and "q text" in noisy
    useful = simulator_fewshot_prompt("q text", "SECRET QUESTION", ["SECRET ANSWER"], "useful")
    assert "SECRET QUESTION" in useful and "SECRET ANSWER" in useful


def test_policy_prompt_is_search_r1_template():
    p = policy_prompt("who wrote hamlet")
    assert p.startswith("Answer the given question. You must conduct reasoning inside <think> and </think> first")
    assert p.endswith(
        "For example, <answer> Beijing </answer>. Question: who wrote hamlet?\n"
    )  # Search-R1 ends it with a newline
    assert "You can search as many times as your want." in p  # the reference's typo is part of the interface


def test_document_formatting_with_and_without_titles():
    docs = [Document(text="Born 1950.", title="Ann Lee"), Document(text="No title here.")]
    assert format_documents(docs) == "Doc 1(Title: Ann Lee) Born 1950.\nDoc 2: No title here."
    assert (
        observation(docs)
        == "\n\n<information>Doc 1(Title: Ann Lee) Born 1950.\nDoc 2: No title here.</information>\n\n"
    )
    assert format_documents(["plain text"]) == "Doc 1: plain text"
    assert INVALID_ACTION.startswith("\nMy previous action is invalid.")
