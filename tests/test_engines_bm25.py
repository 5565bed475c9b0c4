import json
import os
import subprocess
import sys

import pytest

from zerosearch.engines.base import SearchRequest
from zerosearch.engines.bm25 import BM25Engine
from zerosearch.errors import UserError

PASSAGES = [
    ("p0", "Harrow Lake Observatory", "Harrow Lake Observatory was founded in 1911 by the astronomer Ilse Varnum."),
    ("p1", "Ilse Varnum", "Ilse Varnum was an astronomer born in Kessel who studied variable stars."),
    ("p2", "Kessel", "Kessel is a river town known for its glassworks and its annual lantern festival."),
    ("p3", "Harrow Lake", "Harrow Lake is a glacial lake known for trout fishing and a summer sailing regatta."),
    ("p4", "Kessel Glassworks", "The Kessel Glassworks employed four hundred workers in 1920."),
    ("p5", "Brennor Falls", "Brennor Falls is a waterfall on the Sallow river, popular with painters."),
]


def write_corpus(path, passages=PASSAGES):
    path.write_text("".join(json.dumps({"id": i, "contents": f"{t}\n{x}"}) + "\n" for i, t, x in passages))
    return path


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEROSEARCH_CACHE", str(tmp_path / "cache"))
    return write_corpus(tmp_path / "corpus.jsonl")


def test_top_document_and_per_request_k(corpus):
    engine = BM25Engine(corpus)
    results = engine.search([SearchRequest("glassworks workers", k=2), SearchRequest("trout fishing sailing", k=1)])
    assert [len(r) for r in results] == [2, 1]
    assert results[0][0].id == "p4" and results[0][0].title == "Kessel Glassworks"
    assert results[0][0].text == "The Kessel Glassworks employed four hundred workers in 1920."
    assert results[1][0].id == "p3"
    assert results[0][0].score > results[0][1].score
    assert engine.meter.calls == 1 and engine.meter.queries == 2


def test_index_is_saved_and_loaded(corpus):
    first = BM25Engine(corpus)
    second = BM25Engine(corpus)
    assert first.built and not second.built
    query = [SearchRequest("who founded the observatory", k=3)]
    assert [d.id for d in first.search(query)[0]] == [d.id for d in second.search(query)[0]]
    assert first.search(query)[0][0].id == "p0"


def test_edited_corpus_gets_a_new_index(corpus):
    before = BM25Engine(corpus)
    write_corpus(
        corpus, PASSAGES + [("p6", "Sallow River", "The Sallow river flows past Brennor Falls into Harrow Lake.")]
    )
    after = BM25Engine(corpus)
    assert after.built and after.index_dir != before.index_dir
    assert after.search([SearchRequest("Sallow river flows", k=1)])[0][0].id == "p6"


def test_stopword_only_and_unknown_queries_still_answer(corpus):
    results = BM25Engine(corpus).search([SearchRequest("the of and", k=3), SearchRequest("zzzqx", k=10)])
    assert len(results[0]) == 3
    assert len(results[1]) == len(PASSAGES)  # k above the corpus size gives the whole corpus


def test_bad_corpus_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "contents": "T\\nx"}\n{not json\n')
    with pytest.raises(UserError, match=r"bad.jsonl: line 2"):
        BM25Engine(path)
    with pytest.raises(UserError, match="missing.jsonl"):
        BM25Engine(tmp_path / "missing.jsonl")


def test_cli_json_prints_k_documents(corpus, tmp_path):
    env = {**os.environ, "ZEROSEARCH_CACHE": str(tmp_path / "cache")}
    cli = [sys.executable, "-c", "from zerosearch.cli import main; main()", "search"]
    out = subprocess.run(
        cli + ["who founded Harrow Lake Observatory", "--engine", "bm25", "--corpus", str(corpus), "-k", "3", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    docs = json.loads(out.stdout)
    assert len(docs) == 3 and docs[0]["id"] == "p0" and set(docs[0]) == {"id", "title", "text", "score"}
    bad = subprocess.run(cli + ["x", "--corpus", str(tmp_path / "nope.jsonl")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "nope.jsonl" in bad.stderr and "Traceback" not in bad.stderr


def test_the_corpus_stays_on_disk_and_is_read_for_the_hits(corpus):
    import numpy as np

    from zerosearch.engines.corpus import Corpus

    docs = Corpus(corpus)
    assert isinstance(docs.offsets, np.memmap) and len(docs) == len(PASSAGES)
    assert (docs[4].id, docs[4].title) == ("p4", "Kessel Glassworks") and [d.id for d in docs][-1] == "p5"
    with_blank_lines = corpus.with_name("blank.jsonl")
    with_blank_lines.write_text("\n" + corpus.read_text().replace("\n", "\n\n"))
    assert [Corpus(with_blank_lines)[i].id for i in range(len(PASSAGES))] == [p[0] for p in PASSAGES]
