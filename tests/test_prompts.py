from zerosearch.engines.base import Document
from zerosearch.prompts import (
    INVALID_ACTION,
    format_documents,
    observation,
    policy_prompt,
    simulator_fewshot_prompt,
    simulator_sft_prompt,
)

# The released simulators were trained on exactly this text (DESIGN §2.3).
SFT_USEFUL = """You are the Google search engine.
Given a query, you need to generate five useful documents for the query.

The user is trying to answer the question: "who wrote hamlet?" whose answer is William Shakespeare, Shakespeare.
Each document should contain about 30 words, and these documents should contain useful information.

Query: hamlet author
Useful Output:"""


def test_sft_prompt_is_character_exact():
    got = simulator_sft_prompt("hamlet author", "who wrote hamlet?", ["William Shakespeare", "Shakespeare"], "useful")
    assert got == SFT_USEFUL


def test_sft_noisy_prompt_swaps_exactly_three_words():
    noisy = simulator_sft_prompt("hamlet author", "who wrote hamlet?", ["William Shakespeare", "Shakespeare"], "noisy")
    expected = (
        SFT_USEFUL.replace("five useful documents", "five noisy documents")
        .replace("useful information", "noisy information")
        .replace("Useful Output:", "Noisy Output:")
    )
    assert noisy == expected


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
