import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from zerosearch import prompts
from zerosearch.data import DataError, QAExample, load_questions, read_questions, resolve_corpus, write_questions
from zerosearch.data.formats import PARQUET_COLUMNS

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
PARQUET, JSONL = FIXTURES / "real-qa-sample.parquet", FIXTURES / "real-qa-sample.jsonl"
needs_fixtures = pytest.mark.skipif(not PARQUET.exists(), reason="real QA fixtures not present")


@needs_fixtures
def test_reads_the_real_parquet_and_jsonl_alike():
    from_parquet, from_jsonl = read_questions(PARQUET), read_questions(JSONL)
    assert len(from_parquet) == len(from_jsonl) == 80
    first = from_parquet[0]
    assert (first.id, first.question, first.golden_answers, first.data_source) == (
        "nq_dev_0",
        "when will the fa cup quarter final dates be announced?",
        ["17 February 2018"],
        "nq",
    )
    trivia = next(ex for ex in from_parquet if ex.id == "triviaqa_dev_5")
    assert len(trivia.golden_answers) == 7 and "Dennis Miller" in trivia.golden_answers
    assert trivia.meta == {"split": "dev", "index": 5}
    # the jsonl holds the same questions; the parquet's questions went through Search-R1's "?" suffixing
    for p, j in zip(from_parquet, from_jsonl):
        assert (p.id, p.golden_answers, p.data_source) == (j.id, j.golden_answers, j.data_source)
        assert p.question.rstrip("?") == j.question.rstrip("?")


@needs_fixtures
def test_writing_the_real_parquet_back_reproduces_it(tmp_path):
    out = write_questions(read_questions(PARQUET), tmp_path / "copy.parquet")
    real, ours = pq.read_table(PARQUET), pq.read_table(out)
    assert ours.schema.equals(real.schema)
    assert ours.to_pylist() == real.to_pylist()


def test_parquet_row_follows_search_r1(tmp_path):
    ex = QAExample("q1", "who founded Krandel Systems", ["Aldo Varn", "A. Varn"], "miniworld", {"type": "single_hop"})
    row = pq.read_table(write_questions([ex], tmp_path / "a.parquet", split="train")).to_pylist()[0]
    assert row["question"] == "who founded Krandel Systems?"
    assert row["prompt"] == [{"role": "user", "content": prompts.policy_prompt("who founded Krandel Systems?")}]
    assert row["prompt"][0]["content"].endswith("Question: who founded Krandel Systems?\n")
    assert row["reward_model"] == {"style": "rule", "ground_truth": {"target": ["Aldo Varn", "A. Varn"]}}
    assert row["extra_info"] == {"split": "train", "index": 0}
    assert (row["ability"], row["data_source"], row["id"]) == ("fact-reasoning", "miniworld", "q1")
    assert json.loads(row["metadata"]) == {"type": "single_hop"}


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_round_trip_keeps_every_field(tmp_path, suffix):
    examples = [
        QAExample(
            "a",
            "In which year was Aldo Varn born?",
            ["1953"],
            "miniworld",
            {"type": "single_hop", "hops": [{"question": "q", "answer": "1953", "passage_id": "p-1"}]},
        ),
        QAExample("b", 'Who wrote "Tide, and Salt"?', ["Mira Holt", "M. Holt"], "other", {}),
    ]
    back = read_questions(write_questions(examples, tmp_path / f"x{suffix}"))
    assert [(e.id, e.question, e.golden_answers, e.data_source) for e in back] == [
        (e.id, e.question, e.golden_answers, e.data_source) for e in examples
    ]
    if suffix != ".csv":  # csv carries no metadata
        assert back[0].meta["hops"] == examples[0].meta["hops"]


def test_plain_jsonl_and_csv(tmp_path):
    (tmp_path / "plain.jsonl").write_text(
        '{"question": "q one", "answer": "A"}\n\n{"question": "q two", "answers": ["B", 1987]}\n'
    )
    got = read_questions(tmp_path / "plain.jsonl")
    assert [(e.id, e.question, e.golden_answers, e.data_source) for e in got] == [
        ("0", "q one", ["A"], "plain"),
        ("1", "q two", ["B", "1987"], "plain"),
    ]
    (tmp_path / "nq").mkdir()
    (tmp_path / "nq" / "test.csv").write_text('question,answers\nq one,"[""A"", ""B""]"\nq two,C\n')
    got = read_questions(tmp_path / "nq" / "test.csv")
    assert [(e.question, e.golden_answers, e.data_source) for e in got] == [
        ("q one", ["A", "B"], "nq"),
        ("q two", ["C"], "nq"),
    ]


@pytest.mark.parametrize("column", PARQUET_COLUMNS)
def test_parquet_missing_column_is_named(tmp_path, column):
    table = pq.read_table(write_questions([QAExample("a", "q?", ["x"])], tmp_path / "ok.parquet"))
    pq.write_table(table.drop([column]), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=rf"bad\.parquet: missing column '{column}'"):
        read_questions(tmp_path / "bad.parquet")


@pytest.mark.parametrize(
    "line, message",
    [
        (
            '{"question": "q", "golden_answers": "x"}',
            r"line 2: field 'golden_answers' must be a non-empty list of strings",
        ),
        ('{"question": "  ", "golden_answers": ["x"]}', r"line 2: field 'question' is missing or empty"),
        ('{"golden_answers": ["x"]}', r"line 2: field 'question'"),
        ('{"question": "q"}', r"line 2: no answers"),
        ('{"question": "q", "golden_answers": []}', r"line 2: field 'golden_answers'"),
        ('{"question": "q", "golden_answers": [null]}', r"line 2: field 'golden_answers'"),
        ('{"question": "q", "golden_answers": ["x"], "metadata": 3}', r"line 2: field 'metadata'"),
        ('{"question": "q", ', r"line 2: not valid JSON"),
        ('["q", "x"]', r"line 2: expected a JSON object"),
    ],
)
def test_bad_jsonl_rows_are_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "fine", "golden_answers": ["ok"]}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"bad\.jsonl: {message}"):
        read_questions(path)


def test_bad_files(tmp_path):
    (tmp_path / "a.csv").write_text("query,answer\nq,x\n")
    with pytest.raises(DataError, match=r"a\.csv: missing column 'question'"):
        read_questions(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text('question,answers\nq,"[x"\n')
    with pytest.raises(DataError, match=r"b\.csv: line 2: field 'answers' is not a JSON list"):
        read_questions(tmp_path / "b.csv")
    (tmp_path / "c.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"c\.parquet: not a readable parquet file"):
        read_questions(tmp_path / "c.parquet")
    with pytest.raises(DataError, match=r"unknown dataset format '\.txt'"):
        read_questions(tmp_path / "d.txt")
    with pytest.raises(DataError, match=r"no such file"):
        read_questions(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match=r"no questions"):
        read_questions(tmp_path / "empty.jsonl")


def _ten(tmp_path) -> Path:
    examples = [QAExample(str(i), f"q{i}", [f"a{i}"], "nq" if i % 2 else "hotpotqa") for i in range(10)]
    return write_questions(examples, tmp_path / "ten.jsonl")


def test_load_questions_filters_and_samples(tmp_path):
    path = _ten(tmp_path)
    assert [e.id for e in load_questions(path, data_source="nq")] == ["1", "3", "5", "7", "9"]
    with pytest.raises(DataError, match=r"no data_source 'popqa' \(available: hotpotqa, nq\)"):
        load_questions(path, data_source="popqa")
    a, b, c = (load_questions(path, limit=4, seed=s) for s in (0, 0, 1))
    assert [e.id for e in a] == [e.id for e in b] and [e.id for e in a] != [e.id for e in c]
    assert len(a) == 4 and [int(e.id) for e in a] == sorted(int(e.id) for e in a)  # file order kept
    assert len(load_questions(path, limit=50)) == 10
    picked = [e.id for e in load_questions(path, data_source="nq", limit=2, seed=0)]
    assert len(picked) == 2 and set(picked) <= {"1", "3", "5", "7", "9"}
    with pytest.raises(DataError, match="limit"):
        load_questions(path, limit=-1)


def test_resolve_corpus(tmp_path):
    good = tmp_path / "c.jsonl"
    good.write_text('{"id": "1", "contents": "Title\\ntext"}\n')
    assert resolve_corpus(str(good)) == good
    (tmp_path / "q.jsonl").write_text('{"question": "q", "golden_answers": ["a"]}\n')
    with pytest.raises(DataError, match=r"q\.jsonl: line 1: .*'contents'"):
        resolve_corpus(tmp_path / "q.jsonl")
    with pytest.raises(DataError, match="no such corpus"):
        resolve_corpus(tmp_path / "none.jsonl")
    with pytest.raises(DataError, match="not a corpus|question set"):
        resolve_corpus("mini-world:test")
    with pytest.raises(DataError, match="mini-world:train, mini-world:test, mini-world:corpus"):
        load_questions("mini-world:dev")


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "latin1.jsonl",
            b'{"question": "q", "golden_answers": ["a"]}\n{"question": "caf\xe9"}\n',
            r"line 2: not UTF-8",
        ),
        ("nul.jsonl", b'{"question": "q", "golden_answers": ["a"]}\n\x00\x00\n', r"line 2: contains a NUL byte"),
        ("latin1.csv", b"question,answer\nq,a\ncaf\xe9,b\n", r"line 3: not UTF-8 \(byte 0xe9 at column 4\)"),
        ("nul.csv", b"question,answer\nq,a\nq2,b\x00\n", r"line 3: contains a NUL byte"),
        ("huge.csv", b'question,answer\nq,a\nq2,"' + b"x" * 200_000 + b"\n", r"line 3: not valid csv \(field larger"),
    ],
    ids=["latin1-jsonl", "nul-jsonl", "latin1-csv", "nul-csv", "huge-csv"],
)
def test_undecodable_files_name_the_line(tmp_path, name, content, message):
    # Each of these ended in a UnicodeDecodeError or csv.Error traceback.
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=rf"{name}: {message}"):
        read_questions(tmp_path / name)


def test_places_are_counted_from_one(tmp_path):
    rows = [QAExample("a", "q?", ["x"]), QAExample("b", "r?", ["y"])]
    table = pq.read_table(write_questions(rows, tmp_path / "ok.parquet")).to_pylist()
    table[1]["question"] = ""
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(table), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: row 2: field 'question'"):  # the 2nd row, as a person counts
        read_questions(tmp_path / "bad.parquet")
    (tmp_path / "bad.csv").write_text("question,answer\nq,a\n,b\n")
    with pytest.raises(DataError, match=r"bad\.csv: line 3: field 'question'"):  # header = line 1, as an editor shows
        read_questions(tmp_path / "bad.csv")
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"question": "q", "golden_answers": ["a"]}\n')
    assert read_questions(tmp_path / "bom.jsonl")[0].question == "q"
