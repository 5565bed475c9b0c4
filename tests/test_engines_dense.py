import pytest
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


def test_a_prebuilt_faiss_index_is_loaded_by_path_with_e5_prefixes_and_mean_pooling(tmp_path, monkeypatch):
    """Search-R1's layout: an index file whose row i is line i of the corpus, built elsewhere."""
    import faiss
    import numpy as np

    from zerosearch.config import EngineConfig
    from zerosearch.engines import make_engine
    from zerosearch.engines.dense import load_encoder
    from zerosearch.errors import UserError

    monkeypatch.setenv("ZEROSEARCH_CACHE", str(tmp_path / "cache"))
    corpus = write_corpus(tmp_path / "wiki.jsonl")
    encoder = load_encoder("all-minilm-l6-v2", pooling="mean")
    texts = [f"passage: {title}\n{text}" for _, title, text in PASSAGES]
    vectors = encoder.encode(texts, normalize_embeddings=True, convert_to_numpy=True).astype("float32")
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.write_index(index, str(tmp_path / "e5_Flat.index"))

    engine = DenseEngine(
        corpus,
        index_path=tmp_path / "e5_Flat.index",
        query_prefix="query: ",
        passage_prefix="passage: ",
        pooling="mean",
    )
    (hits,) = engine.search([SearchRequest("factory making bottles and windows", k=2)])
    assert hits[0].id == "p4" and hits[0].title == "Kessel Glassworks" and len(hits) == 2
    query = encoder.encode(["query: factory making bottles and windows"], normalize_embeddings=True)
    assert hits[0].score == pytest.approx(float(np.dot(query[0], vectors[4])), abs=1e-4)
    assert not list((tmp_path / "cache" / "indexes").glob("dense-*"))  # nothing was built
    configured = make_engine(
        EngineConfig(
            name="dense",
            corpus=str(corpus),
            index_path=str(tmp_path / "e5_Flat.index"),
            query_prefix="query: ",
            passage_prefix="passage: ",
            pooling="mean",
        )
    )
    assert configured.search([SearchRequest("factory making bottles and windows", k=2)]) == [hits]
    # the corpus stays on disk: 8 bytes of offsets a passage, memory-mapped
    assert isinstance(engine.docs.offsets, np.memmap) and engine.docs.offsets.nbytes == 8 * len(PASSAGES)

    short = write_corpus(tmp_path / "short.jsonl", PASSAGES[:3])
    with pytest.raises(UserError, match="holds 6 vectors but the corpus"):
        DenseEngine(short, index_path=tmp_path / "e5_Flat.index")
    with pytest.raises(UserError, match="dense index not found"):
        DenseEngine(corpus, index_path=tmp_path / "missing.index")
