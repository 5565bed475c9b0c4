from test_engines_bm25 import PASSAGES, write_corpus

from zerosearch.engines.base import SearchRequest
from zerosearch.engines.dense import DenseEngine


def test_semantic_match_and_persisted_index(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEROSEARCH_CACHE", str(tmp_path / "cache"))
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    engine = DenseEngine(corpus)
    # No word in common with the passage's key terms: only the meaning matches.
    results = engine.search(
        [SearchRequest("factory making bottles and windows", k=2), SearchRequest("cascade where artists paint", k=6)]
    )
    assert results[0][0].id == "p4" and len(results[0]) == 2
    assert results[1][0].id == "p5" and len(results[1]) == len(PASSAGES)
    assert -1.0 <= results[1][-1].score <= results[1][0].score <= 1.0
    again = DenseEngine(corpus)
    assert engine.built and not again.built and again.index.ntotal == len(PASSAGES)
    assert again.identity() == engine.identity()
