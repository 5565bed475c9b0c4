import json

import pytest

from zerosearch import prompts
from zerosearch.errors import UserError
from zerosearch.generation.base import Completion, Generator
from zerosearch.sft.grade import copies_prompt, distinct_n, grade, load_items, markdown, parse_spec


class Scripted(Generator):
    """Writes the gold answer into useful outputs, one short malformed noisy output, and leaks once."""

    name = "scripted"
    tokenizer = None

    def generate(self, prompts_, *, max_new_tokens=256, stop=(), temperature=1.0, top_p=1.0, seed=None):
        outs = []
        for p in prompts_:
            if "Useful Output:" in p:
                answer = p.split("whose answer is ")[1].split(".\n")[0]
                text = "\n".join(f"Doc {i}: fact {i} is {answer}" for i in range(1, 6))
            elif "query B" in p:
                text = "Doc 1: the answer is bravo\nDoc 2: more"  # a leak, and only 2 of 5 documents
            else:
                text = "\n".join(f"Doc {i}: nothing here" for i in range(1, 6))
            outs.append(Completion(text=text, token_ids=[0] * 10, finish_reason="eos"))
        return outs


def _items(tmp_path):
    rows = []
    for q, a in (("A", "alpha"), ("B", "bravo"), ("C", "query")):
        user = prompts.simulator_sft_prompt(f"query {q}", f"question {q}?", [a], "useful")
        rows.append(
            {
                "prompt": [{"role": "system", "content": ""}, {"role": "user", "content": user}],
                "completion": [{"role": "assistant", "content": f"Doc 1: fact 1 is {a}"}],
                "question": f"question {q}?",
                "golden_answers": [a],
                "query": f"query {q}",
                "mode": "useful",
            }
        )
    rows.append(rows[0])  # the same query twice is graded once
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_items(tmp_path)


def test_report_card_metrics_by_hand(tmp_path):
    items = _items(tmp_path)
    assert [it["query"] for it in items] == ["query A", "query B", "query C"]
    card = grade(Scripted(), "sft", items, k=5, batch_size=3)
    assert card["useful_answer_hit"] == 1.0
    assert card["noisy_answer_leak"] == 0.5
    assert card["queries_containing_answer"] == 1  # "query C" names its own answer: not in hit/leak
    assert card["format_validity"] == 5 / 6  # 5 of 6 outputs have 5 well-formed documents
    assert card["completion_tokens_per_query"] == 10
    # Useful output: 20 tokens ("fact i is alpha" ×5); real documents: "fact 1 is alpha"; 4 shared → P 4/20, R 1.
    p, r = 4 / 20, 1.0
    assert card["overlap_f1"] == pytest.approx(2 * p * r / (p + r))  # the same for all three queries
    assert card["outputs"][1]["noisy"][:2] == ["the answer is bravo", "more"]
    assert card["prompt_copy"] == 0.0  # no output repeats the prompt
    table = markdown({"scripted": card})
    assert "| scripted | sft | 1.000 | 0.500 | 0.833 | 0.000 |" in table


def test_distinct_n_by_hand():
    # bigrams: (a b) (b a) (a b) | (a b): 2 distinct of 4
    assert distinct_n(["a b a b", "A B"]) == 0.5
    assert distinct_n(["one"]) == 0.0


def test_parse_spec():
    assert parse_spec("smollm2-135m") == ("smollm2-135m", "fewshot")
    assert parse_spec("runs/sim") == ("runs/sim", "sft")
    assert parse_spec("runs/sim:fewshot") == ("runs/sim", "fewshot")
    with pytest.raises(UserError, match="PROMPT"):
        parse_spec("smollm2-135m:chat")


def test_grade_runs_a_real_tiny_model(tmp_path):
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    card = grade(HFGenerator(*load_model("tiny-random")), "sft", _items(tmp_path), max_new_tokens=16)
    assert 0.0 <= card["format_validity"] <= 1.0 and card["tokens_per_s"] > 0 and card["queries"] == 3


def test_bad_held_out_file_is_a_clear_error(tmp_path):
    (tmp_path / "validation.jsonl").write_text('{"question": "q"}\n')
    with pytest.raises(UserError, match="validation.jsonl:1"):
        load_items(tmp_path)


def test_copies_prompt_by_hand():
    query = "when was harrow lake observatory founded by ilse varnum"  # 9 words
    prompt = prompts.simulator_sft_prompt(query, "When was Harrow Lake Observatory founded?", ["1911"], "useful")
    # 8 words of the preamble, case and punctuation aside: copied
    assert copies_prompt("Doc 1: THE USER is trying to answer, the question of 1911.", prompt, query)
    assert not copies_prompt("Doc 1: the user is trying to answer the", prompt, query)  # 7 words: written
    assert not copies_prompt("Doc 1: Harrow Lake Observatory was founded in 1911 by Ilse Varnum.", prompt, query)
    # repeating the query is what real documents do: not a copy
    assert not copies_prompt(f"Doc 1: {query} is a common question.", prompt, query)
    # the few-shot prompt's worked example is copied text too
    fewshot = prompts.simulator_fewshot_prompt("kestrel bay", "Where is Kestrel Bay?", ["Amber Coast"], "noisy")
    example = "Doc 1: Harrow Lake is a glacial lake known for its trout fishing and its summer sailing regatta."
    assert copies_prompt(example, fewshot, "kestrel bay")


class Copier(Generator):
    """Copies the question/answer preamble into query A's useful output and an instruction into query B's noisy
    output; writes plain documents otherwise."""

    name = "copier"
    tokenizer = None

    def generate(self, prompts_, *, max_new_tokens=256, stop=(), temperature=1.0, top_p=1.0, seed=None):
        outs = []
        for p in prompts_:
            docs = [f"Doc {i}: an unrelated line number {i}" for i in range(1, 6)]
            if "query A" in p and "Useful Output:" in p:
                docs[0] = "Doc 1: " + next(line for line in p.splitlines() if line.startswith("The user is trying"))
            elif "query B" in p and "Noisy Output:" in p:
                docs[2] = "Doc 3: Each document should contain about 30 words, and so on."
            outs.append(Completion(text="\n".join(docs), token_ids=[0], finish_reason="eos"))
        return outs


def test_report_card_counts_prompt_copies(tmp_path):
    card = grade(Copier(), "sft", _items(tmp_path), k=5)
    assert card["prompt_copy"] == 2 / 6  # 2 of 3 queries x 2 modes
    assert [o["copies_prompt"] for o in card["outputs"]] == [
        {"useful": True, "noisy": False},
        {"useful": False, "noisy": True},
        {"useful": False, "noisy": False},
    ]
    assert card["useful_answer_hit"] == 0.5  # earned by the copied preamble only: the reason for the copy rate
    assert {"useful_answer_hit", "noisy_answer_leak", "format_validity", "prompt_copy"} <= set(card)
    assert "prompt copy ↓" in markdown({"copier": card})


def test_useful_hit_counts_only_queries_that_ask_for_the_answer_and_whose_real_documents_hold_it(tmp_path):
    items = _items(tmp_path)
    # query B is a first hop: it asks for a bridge entity, and its real documents lack the final answer
    items[1] |= {"real": "Doc 1: a first hop naming the bridge", "query_answers": ["bridge"]}
    card = grade(Scripted(), "sft", items, k=5, batch_size=3)
    assert card["queries_answerable"] == 1 and card["queries_first_hop"] == 1
    assert card["useful_answer_hit"] == 1.0  # over query A only
    assert card["useful_shortcut"] == 1.0  # query B's useful output holds the final answer anyway
    items[1]["query_answers"] = ["bravo"]  # asks for the final answer, which its real documents lack: neither
    card = grade(Scripted(), "sft", items, k=5, batch_size=3)
    assert card["queries_answerable"] == 1 and card["queries_first_hop"] == 0
    assert card["noisy_answer_leak"] == 0.5  # still over A and B: a noisy output must never hold the answer
