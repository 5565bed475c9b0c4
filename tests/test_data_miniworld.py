import json
import re

import pyarrow.parquet as pq
import pytest

from zerosearch.data import QAExample, load_questions, read_questions, resolve_corpus
from zerosearch.data.miniworld import SIZES, bm25_searcher, build, generate, oracle_hop_recall
from zerosearch.data.world import build_world
from zerosearch.rewards import normalize_answer


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mw")
    build(out, seed=0, size="small")
    return out


def _corpus(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_same_seed_same_bytes_other_seed_other_world(world_dir, tmp_path):
    build(tmp_path / "again", seed=0, size="small")
    build(tmp_path / "other", seed=1, size="small")
    for name in ("corpus.jsonl", "test.jsonl", "train.jsonl"):
        same = (world_dir / name).read_bytes()
        assert (tmp_path / "again" / name).read_bytes() == same
        assert (tmp_path / "other" / name).read_bytes() != same


def test_stats_report_solvability(world_dir):
    stats = json.loads((world_dir / "stats.json").read_text())
    assert stats["oracle_hop_recall@5"]["test"] >= 0.9 and stats["oracle_hop_recall@5"]["train"] >= 0.9
    assert stats["answers_in_support"] == {"train": 1.0, "test": 1.0}
    assert stats["questions"]["test"] == SIZES["small"].test | {"total": sum(SIZES["small"].test.values())}
    assert stats["questions"]["train"]["two_hop"] > 0 and stats["questions"]["train"]["single_hop"] > 0
    assert stats["corpus"]["passages"] == len(_corpus(world_dir / "corpus.jsonl"))
    assert 1000 <= stats["corpus"]["passages"] <= 2500
    # a two-hop question as one query almost never brings both passages: a second search is needed
    assert stats["test_question_as_one_query_full_support@5"]["two_hop"] < 0.2


def test_corpus_passages(world_dir):
    passages = _corpus(world_dir / "corpus.jsonl")
    assert len({p["id"] for p in passages}) == len(passages)
    for p in passages:
        assert set(p) == {"id", "contents"}
        title, text = p["contents"].split("\n")
        assert title and 25 <= len(text.split()) <= 120


def test_every_test_answer_is_in_the_corpus_and_no_test_question_in_train(world_dir):
    corpus = " ".join(normalize_answer(p["contents"]) for p in _corpus(world_dir / "corpus.jsonl"))
    test, train = read_questions(world_dir / "test.jsonl"), read_questions(world_dir / "train.jsonl")
    assert all(normalize_answer(ex.golden_answers[0]) in corpus for ex in test)
    assert not {ex.question for ex in test} & {ex.question for ex in train}
    # stronger: the split is by fact, so training never shows a fact a test question needs
    assert not {f for ex in test for f in ex.meta["facts"]} & {f for ex in train for f in ex.meta["facts"]}


def test_question_evidence(world_dir):
    passages = {p["id"]: p["contents"] for p in _corpus(world_dir / "corpus.jsonl")}
    for ex in read_questions(world_dir / "test.jsonl"):
        hops, kind = ex.meta["hops"], ex.meta["type"]
        assert ex.meta["supporting_ids"] == list(dict.fromkeys(h["passage_id"] for h in hops))
        for hop in hops:
            assert normalize_answer(hop["answer"]) in normalize_answer(passages[hop["passage_id"]])
        if kind == "single_hop":
            assert len(hops) == 1 and hops[0]["question"] == ex.question and hops[0]["answer"] == ex.golden_answers[0]
        elif kind == "two_hop":
            # the first hop's answer is the entity whose own page holds the second fact, named in the second query
            first, second = hops
            assert passages[second["passage_id"]].split("\n")[0] == first["answer"]
            assert first["answer"] in second["question"] and first["answer"] not in ex.question
            assert second["answer"] == ex.golden_answers[0]
        else:
            (a, b) = hops
            names = re.match(r".*, (.+) or (.+)\?$", ex.question).groups()
            va, vb = (int(h["answer"].split()[0].replace(",", "")) for h in hops)
            later_wins = "longer" in ex.question or "larger" in ex.question
            winner = names[0] if (va > vb) == later_wins else names[1]
            assert normalize_answer(winner) == normalize_answer(ex.golden_answers[0])


def test_parquet_schema(world_dir):
    table = pq.read_table(world_dir / "test.parquet")
    assert {"data_source", "prompt", "question", "golden_answers", "reward_model", "extra_info"} <= set(
        table.column_names
    )
    rows = table.to_pylist()
    assert all(isinstance(t, str) for r in rows for t in r["reward_model"]["ground_truth"]["target"])
    assert [r["extra_info"] for r in rows[:2]] == [{"split": "test", "index": 0}, {"split": "test", "index": 1}]
    from_jsonl = read_questions(world_dir / "test.jsonl")
    from_parquet = read_questions(world_dir / "test.parquet")
    assert [(e.question, e.golden_answers, e.meta["hops"]) for e in from_parquet] == [
        (e.question, e.golden_answers, e.meta["hops"]) for e in from_jsonl
    ]


def test_confusable_world():
    world = build_world(0)
    people = [e for e in world.values() if e.kind == "person"]
    surnames = [p.attrs["surname"] for p in people]
    assert len(set(surnames)) < len(people) / 3  # surnames are shared
    assert len({e.name.lower() for e in world.values()}) == len(world)  # but every full name is unique
    companies = [e.name.split()[0] for e in world.values() if e.kind == "company"]
    assert set(companies) & set(surnames)  # companies named like people
    assert any(c.kind == "club" and c.name.startswith(world[c.attrs["city"]].name) for c in world.values())


def test_oracle_recall_counts_hits():
    passages = [
        {"id": "a", "contents": "Aldo Varn\nAldo Varn was born in Kessimor."},
        {"id": "b", "contents": "Kessimor\nKessimor is a city on the Velna River."},
    ]
    hops = [
        {"question": "Where was Aldo Varn born?", "passage_id": "a"},
        {"question": "Which river flows through Kessimor?", "passage_id": "b"},
        {"question": "Which river flows through Kessimor?", "passage_id": "a"},
    ]
    examples = [
        QAExample("1", "q", ["x"], meta={"hops": hops[:2]}),
        QAExample("2", "q", ["x"], meta={"hops": hops[1:]}),
    ]
    search = bm25_searcher(passages, k=1)
    assert oracle_hop_recall(search, examples) == (2 / 3, 3)


def test_mini_world_specs_build_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEROSEARCH_CACHE", str(tmp_path))
    test = load_questions("mini-world:test")
    home = tmp_path / "mini-world" / "small-seed0"
    assert resolve_corpus("mini-world:corpus") == home / "corpus.jsonl"
    stamp = (home / "stats.json").stat().st_mtime_ns
    assert [e.question for e in load_questions("mini-world:test")] == [e.question for e in test]
    assert (home / "stats.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert sorted(p.name for p in (tmp_path / "mini-world").iterdir()) == ["small-seed0"]  # no temp dirs left
    assert len(load_questions("mini-world:train", limit=10)) == 10
    (home / "stats.json").write_text('{"version": 0}')  # a world from an older generator is rebuilt
    assert load_questions("mini-world:test")[0].question == test[0].question
    assert json.loads((home / "stats.json").read_text())["version"] > 0
    assert test[0].meta["type"] in ("single_hop", "two_hop", "comparison") and test[0].data_source == "miniworld"


def test_generate_is_pure():
    a, b = generate(3, "small"), generate(3, "small")
    assert a[0] == b[0] and [e.question for e in a[2]] == [e.question for e in b[2]]
