import json

import pytest

from zerosearch.config import RolloutConfig
from zerosearch.data.formats import QAExample
from zerosearch.engines.bm25 import BM25Engine
from zerosearch.sft.collect import collect, collect_stats, done_question_ids, oracle_queries, read_records

CORPUS = [
    ("harrow", "Harrow Lake Observatory\nThe observatory was founded in 1911 by Ilse Varnum."),
    ("varnum", "Ilse Varnum\nIlse Varnum was an astronomer born in Kestrel Bay."),
    ("kestrel", "Kestrel Bay\nKestrel Bay is a fishing town on the Amber Coast."),
    ("amber", "Amber Coast\nThe Amber Coast is known for its cliffs and lighthouses."),
]
QUESTIONS = [
    QAExample("q1", "Who founded Harrow Lake Observatory?", ["Ilse Varnum"], "toy"),
    QAExample(
        "q2",
        "Where was the founder of Harrow Lake Observatory born?",
        ["Kestrel Bay"],
        "toy",
        meta={
            "hops": [
                {"question": "Who founded Harrow Lake Observatory?", "answer": "Ilse Varnum"},
                {"question": "Where was Ilse Varnum born?", "answer": "Kestrel Bay"},
            ]
        },
    ),
    QAExample("q3", "What is the Amber Coast known for?", ["cliffs"], "toy"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": i, "contents": c}) + "\n" for i, c in CORPUS))
    return BM25Engine(path, index_dir=path.parent / "index")


def test_oracle_queries_are_the_question_then_distinct_hops_each_with_its_own_answer():
    assert oracle_queries(QUESTIONS[0]) == {"Who founded Harrow Lake Observatory?": ["Ilse Varnum"]}
    assert oracle_queries(QUESTIONS[1]) == {
        "Where was the founder of Harrow Lake Observatory born?": ["Kestrel Bay"],
        "Who founded Harrow Lake Observatory?": ["Ilse Varnum"],  # the bridge, not the final answer
        "Where was Ilse Varnum born?": ["Kestrel Bay"],
    }


def test_oracle_collection_keeps_every_interaction_and_resumes(engine, tmp_path):
    out = tmp_path / "interactions.jsonl"
    assert collect(QUESTIONS[:2], engine, out, source="oracle", k=2, progress=False) == 2
    rows = read_records(out)
    assert [r["question_id"] for r in rows] == ["q1", "q2", "q2", "q2"]
    hop2 = rows[3]
    assert hop2["query"] == "Where was Ilse Varnum born?" and hop2["golden_answers"] == ["Kestrel Bay"]
    assert hop2["documents"][0]["id"] == "varnum" and len(hop2["documents"]) == 2
    assert hop2["engine"] == engine.identity() and hop2["source"] == "oracle"
    assert rows[2]["query_answers"] == ["Ilse Varnum"] and "query_answers" not in hop2  # the same as the gold

    with out.open("a") as f:
        f.write('{"question_id": "q3", "quest')  # a crash mid-write
    assert done_question_ids(out) == {"q1", "q2"}
    assert collect(QUESTIONS, engine, out, source="oracle", k=2, progress=False) == 1  # only q3 is new
    rows = read_records(out)
    assert [r["question_id"] for r in rows] == ["q1", "q2", "q2", "q2", "q3"]
    stats = collect_stats(rows)
    assert stats["questions"] == 3 and stats["sources"]["oracle"]["interactions"] == 5
    # Every top-2 list holds its gold answer (q2's hop 1 gets varnum as a zero-score tie); blank one list out.
    assert stats["sources"]["oracle"]["answer_in_documents_rate"] == pytest.approx(1.0)
    rows[2]["documents"] = [{"id": "amber", "text": "The Amber Coast is known for its cliffs."}]
    assert collect_stats(rows)["sources"]["oracle"]["answer_in_documents_rate"] == pytest.approx(4 / 5)


def test_agent_collection_runs_real_rollouts(engine, tmp_path):
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    model, tokenizer = load_model("tiny-random")
    out = tmp_path / "agent.jsonl"
    cfg = RolloutConfig(max_turns=1, max_turn_tokens=8, temperature=1.0)
    collect(
        QUESTIONS[:2],
        engine,
        out,
        source="agent",
        generator=HFGenerator(model, tokenizer),
        rollout_cfg=cfg,
        samples=2,
        k=2,
        progress=False,
    )
    rows = read_records(out)
    # A random model rarely searches: each question still has at least one record, so a rerun skips it.
    assert {r["question_id"] for r in rows} == {"q1", "q2"}
    assert all(r["source"] == "agent" and (r["query"] is None) == (r["documents"] == []) for r in rows)
