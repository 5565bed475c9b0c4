import json

from datasets import load_dataset

from zerosearch import prompts
from zerosearch.sft.build import build, render_documents


def _rec(qid, query, label, docs, answers=("Varnum",)):
    return {
        "question_id": qid,
        "question": f"Who founded {qid}?",
        "golden_answers": list(answers),
        "query": query,
        "documents": [{"text": t, "title": "Harrow"} for t in docs],
        "label": label,
        "source": "oracle",
    }


def test_render_documents_folds_titles_and_cuts_words():
    docs = [{"title": "Harrow", "text": "one two three four"}, {"title": "X", "text": "X is here"}, {"text": "  "}]
    assert render_documents(docs, k=5, max_doc_words=3) == [{"text": "Harrow: one two"}, {"text": "X is here"}]
    assert len(render_documents(docs, k=1, max_doc_words=3)) == 1


def test_build_exact_prompt_dedup_drop_balance_split():
    records = [
        _rec("q1", "founder of Harrow", "useful", ["founded by Varnum in 1911"]),
        _rec("q1", "Founder of  Harrow!", "useful", ["founded by Varnum in 1911"]),  # duplicate after normalization
        _rec("q1", "harrow lake", "noisy", ["a lake with trout"]),
        _rec("q2", "who built it", "useful", ["built by Varnum"]),
        _rec("q2", "", "useful", ["x"]),  # no query
        _rec("q3", "q", "useful", []),  # no documents
        _rec("q3", "q", None, ["x"]),  # unlabelled (judge could not parse)
        _rec("q3", "long", "useful", ["word " * 50 + "Varnum"]),  # answer only past the cut
        _rec("q4", "lake fish", "noisy", ["trout and pike"]),
        _rec("q5", "more", "useful", ["Varnum again"]),
    ]
    train, val, stats = build(records, k=5, max_doc_words=40, balance=1.0, val_fraction=0.25, seed=0)
    assert stats["dropped"] == {
        "duplicate": 1,
        "no_query_or_documents": 2,
        "unlabelled": 1,
        "answer_cut_off": 1,
        "balance_useful": 1,
    }
    rows = train + val
    assert sorted(r["mode"] for r in rows) == ["noisy", "noisy", "useful", "useful"]
    assert {r["question_id"] for r in train}.isdisjoint({r["question_id"] for r in val}) and val
    row = next(r for r in rows if r["query"] == "harrow lake")
    assert row["prompt"] == [
        {"role": "system", "content": ""},
        {
            "role": "user",
            "content": prompts.simulator_sft_prompt("harrow lake", "Who founded q1?", ["Varnum"], "noisy"),
        },
    ]
    assert row["prompt"][1]["content"].endswith("Query: harrow lake\nNoisy Output:\n")
    assert row["completion"] == [{"role": "assistant", "content": "Doc 1: Harrow: a lake with trout"}]


def test_build_output_loads_with_datasets(tmp_path):
    records = [
        _rec(f"q{i}", f"query {i}", "useful" if i % 2 else "noisy", [f"doc {i} Varnum" if i % 2 else f"doc {i}"])
        for i in range(10)
    ]
    train, val, _ = build(records, val_fraction=0.2)
    for name, rows in (("train", train), ("validation", val)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_dataset(
        "json", data_files={"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "validation.jsonl")}
    )
    assert len(data["train"]) == 8 and len(data["validation"]) == 2
    assert data["train"][0]["completion"][0]["role"] == "assistant"
