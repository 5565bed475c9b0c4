"""Every prompt template of the project, and only here.

The policy prompt and the SFT simulator prompts are interfaces: the released ZeroSearch policies and the
`sunhaonlp/Simulation_LLM_*_V2` simulators were trained on them, so they match the reference character for
character. The prompt-based simulator and the agent/judge prompts are ours.
"""

from __future__ import annotations

from collections.abc import Sequence

# --- policy protocol (see docs/protocol.md) ------------------------------------------------------------

POLICY_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time "
    "you get new information. After reasoning, if you find you lack some knowledge, you can call a search "
    "engine by <search> query </search> and it will return the top searched results between <information> "
    "and </information>. You can search as many times as your want. If you find no further external "
    "knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed "
    "illustrations. For example, <answer> Beijing </answer>. Question: {question}\n"
)

INVALID_ACTION = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and "
    "</search>. If I want to give the final answer, I should put the answer between <answer> and "
    "</answer>. Let me try again.\n"
)

OBSERVATION_OPEN = "\n\n<information>"
OBSERVATION_CLOSE = "</information>\n\n"
STOP_STRINGS = ("</search>", "</answer>")


def policy_prompt(question: str) -> str:
    question = question.strip()
    if question and not question.endswith("?"):  # as Search-R1's data preparation does
        question += "?"
    return POLICY_PROMPT.format(question=question)


def format_documents(docs: Sequence) -> str:
    """`Doc 1(Title: t) text` lines, or `Doc 1: text` when a document has no title (Search-R1 format)."""
    lines = []
    for i, doc in enumerate(docs, start=1):
        title, text = (None, doc) if isinstance(doc, str) else (doc.title, doc.text)
        lines.append(f"Doc {i}(Title: {title}) {text}" if title else f"Doc {i}: {text}")
    return "\n".join(lines)


def observation(docs: Sequence) -> str:
    return f"{OBSERVATION_OPEN}{format_documents(docs)}{OBSERVATION_CLOSE}"


# --- fine-tuned simulator (see docs/protocol.md) -------------------------------------------------------

# Verbatim from the reference (`search_simulate_sft` in llm_agent/generation.py), trailing newline included.
SIMULATOR_SFT_PROMPT = (
    "You are the Google search engine.\n"
    "Given a query, you need to generate five {mode} documents for the query.\n\n"
    'The user is trying to answer the question: "{question}" whose answer is {ground_truth}.\n'
    "Each document should contain about 30 words, and these documents should contain {mode} information.\n\n"
    "Query: {query}\n"
    "{Mode} Output:\n"
)

MODES = ("useful", "noisy")


def render_answers(answers: Sequence[str] | str) -> str:
    """Gold answers as our own prompts (few-shot simulator, judge) show them: a comma-joined list."""
    if isinstance(answers, str):
        return answers
    return ", ".join(str(a) for a in answers)


def simulator_sft_prompt(query: str, question: str, answers: Sequence[str] | str, mode: str) -> str:
    """The released simulators' prompt. It names only the first gold answer, as the reference renders it
    (`ground_truth[index][0]`) and as those checkpoints were trained."""
    if mode not in MODES:
        raise ValueError(f"simulator mode must be one of {MODES}, got {mode!r}")
    first = answers if isinstance(answers, str) else (str(answers[0]) if len(answers) else "")
    return SIMULATOR_SFT_PROMPT.format(
        mode=mode, Mode=mode.capitalize(), question=question, ground_truth=first, query=query
    )


# --- prompt-based simulator (ours: any instruct model, one worked example) -----------------------------

_EXAMPLE_QUERY = "Harrow Lake Observatory founding year"
_EXAMPLE_USEFUL = (
    "Doc 1: Harrow Lake Observatory was founded in 1911 by the astronomer Ilse Varnum on the north shore "
    "of Harrow Lake, where the dark skies suited long photographic exposures.\n"
    "Doc 2: Built in 1911, the observatory's first telescope was a 24-inch refractor paid for by a "
    "subscription among the lake's fishing towns.\n"
    "Doc 3: The Harrow Lake Observatory celebrated its centenary in 2011, a hundred years after Ilse "
    "Varnum opened it to visiting students.\n"
    "Doc 4: Records of the regional science society list 1911 as the year Harrow Lake Observatory began "
    "regular observations of variable stars.\n"
    "Doc 5: Harrow Lake Observatory, founded 1911, is now run by the state university and opens to the "
    "public on clear Friday nights."
)
_EXAMPLE_NOISY = (
    "Doc 1: Harrow Lake is a glacial lake known for its trout fishing and its summer sailing regatta, "
    "which draws crews from across the region.\n"
    "Doc 2: Several amateur astronomy clubs meet near the lake, and local guides recommend the eastern "
    "beaches for watching meteor showers in August.\n"
    "Doc 3: The town of Harrow holds a lantern festival each autumn; visitors often combine it with a "
    "walk along the old lakeside railway line.\n"
    "Doc 4: Observatories in mountain regions face weather delays, and many modern telescopes are now "
    "operated remotely from university campuses.\n"
    "Doc 5: The lake's visitor centre sells maps of hiking trails, hosts a small natural history display "
    "and rents kayaks during the warmer months."
)

SIMULATOR_FEWSHOT_USEFUL = (
    "You are a search engine. Given a query, write five short documents (about 30 words each) that a "
    "search engine would return, one per line, numbered 'Doc 1:' to 'Doc 5:'. The documents must be "
    "useful: they should contain the information needed to answer the user's question.\n\n"
    'Example. The user is trying to answer the question: "When was Harrow Lake Observatory founded?" '
    "whose answer is 1911.\nQuery: " + _EXAMPLE_QUERY + "\nOutput:\n" + _EXAMPLE_USEFUL + "\n\n"
    'Now the real task. The user is trying to answer the question: "{question}" whose answer is '
    "{ground_truth}.\nQuery: {query}\nOutput:"
)

# Noisy mode omits the question and the answer, so that the model cannot leak the answer.
SIMULATOR_FEWSHOT_NOISY = (
    "You are a search engine. Given a query, write five short documents (about 30 words each) that a "
    "search engine would return, one per line, numbered 'Doc 1:' to 'Doc 5:'. The documents must be "
    "noisy: loosely related to the query's words, but without the specific fact the query asks for.\n\n"
    "Example.\nQuery: " + _EXAMPLE_QUERY + "\nOutput:\n" + _EXAMPLE_NOISY + "\n\n"
    "Now the real task.\nQuery: {query}\nOutput:"
)


def simulator_fewshot_prompt(query: str, question: str, answers: Sequence[str] | str, mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"simulator mode must be one of {MODES}, got {mode!r}")
    if mode == "noisy":
        return SIMULATOR_FEWSHOT_NOISY.format(query=query)
    return SIMULATOR_FEWSHOT_USEFUL.format(query=query, question=question, ground_truth=render_answers(answers))


# --- evaluation baselines (ours) -----------------------------------------------------------------------

DIRECT_PROMPT = (
    "Answer the given question directly, without explanation. Put the answer inside <answer> and "
    "</answer>, for example <answer> Beijing </answer>. Question: {question}"
)

COT_PROMPT = (
    "Answer the given question. First think step by step inside <think> and </think>, then give the "
    "short final answer inside <answer> and </answer>, for example <answer> Beijing </answer>. "
    "Question: {question}"
)

RAG_PROMPT = (
    "Answer the given question using the documents below. Give only the short answer, inside <answer> "
    "and </answer>, for example <answer> Beijing </answer>.\n\nDocuments:\n{documents}\n\nQuestion: {question}"
)

# A ReAct/Search-o1-like prompt for an instruct model that was never trained on the protocol.
AGENT_PROMPT = (
    "You are a research assistant with a search engine. To find facts you do not know, write a search "
    "query between <search> and </search>; results come back between <information> and </information>. "
    "Search one fact at a time: for a question about two linked facts, first search for the first, then "
    "use what you found to search for the second. Think briefly inside <think> and </think> before each "
    "step. When you know the answer, write only the short answer between <answer> and </answer>, for "
    "example <answer> Beijing </answer>.\n\nQuestion: {question}"
)

# --- simulator SFT pipeline: the LLM judge (ours) ------------------------------------------------------

JUDGE_PROMPT = (
    "You judge search results. A user wants to answer the question below, whose correct answer is given. "
    "Decide whether the documents contain the information needed to answer the question.\n\n"
    'Question: "{question}"\nCorrect answer: {ground_truth}\n\nDocuments:\n{documents}\n\n'
    "Reply with one word: useful if the documents let one answer the question, noisy otherwise.\n"
    "Judgement:"
)


def judge_prompt(question: str, answers: Sequence[str] | str, documents: Sequence) -> str:
    return JUDGE_PROMPT.format(
        question=question, ground_truth=render_answers(answers), documents=format_documents(documents)
    )


# --- the policy prompt under verl (see docs/integrations.md) ---------------------------------------------
# Our policy prompt with the search described as a tool call (verl parses tool calls, not <search> tags).
TOOL_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time "
    "you get new information. After reasoning, if you find you lack some knowledge, you can call the search "
    "tool with a query and it will return the top searched results. You can search as many times as your want. "
    "If you find no further external knowledge needed, you can directly provide the answer inside <answer> and "
    "</answer>, without detailed illustrations. For example, <answer> Beijing </answer>. Question: {question}\n"
)
