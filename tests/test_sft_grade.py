import json

import pytest

from zerosearch import prompts
from zerosearch.errors import UserError
from zerosearch.generation.base import Completion, Generator
from zerosearch.sft.grade import distinct_n, grade, load_items, markdown, parse_spec


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
    table = markdown({"scripted": card})
    assert "| scripted | sft | 1.000 | 0.500 | 0.833 |" in table


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
