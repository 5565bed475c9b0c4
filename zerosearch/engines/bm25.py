"""BM25 over a corpus jsonl (bm25s). The index is built once, stored in the cache directory under the
corpus file's fingerprint, and loaded on later runs; passages are read from the file for the hits only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zerosearch.engines import corpus as corpus_lib
from zerosearch.engines.base import Document, SearchEngine, SearchRequest


class BM25Engine(SearchEngine):
    name = "bm25"

    def __init__(self, corpus: str | Path, *, index_dir: str | Path | None = None):
        super().__init__()
        import bm25s
        import Stemmer

        index_dir = Path(index_dir) if index_dir else None  # given: everything goes beside it, not in the cache
        self.docs = corpus_lib.Corpus(corpus, index_dir and index_dir.with_name(f"{index_dir.name}-offsets"))
        self.corpus_path = self.docs.path
        self.index_dir = index_dir or corpus_lib.index_dir("bm25", self.corpus_path)
        self.tokenizer = bm25s.tokenization.Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords="en")

        def build(tmp: Path) -> None:
            texts = [f"{d.title}\n{d.text}" if d.title else d.text for d in self.docs]
            retriever = bm25s.BM25()
            retriever.index(self.tokenizer.tokenize(texts, return_as="tuple", show_progress=False), show_progress=False)
            retriever.save(tmp)
            self.tokenizer.save_vocab(tmp)

        self.built = corpus_lib.build_once(self.index_dir, build)
        self.retriever = bm25s.BM25.load(self.index_dir)
        self.tokenizer.load_vocab(self.index_dir)

    def identity(self) -> str:
        return f"bm25:{corpus_lib.fingerprint(self.corpus_path)}"

    def _top_k(self, token_ids: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        # Top k among the documents that share a term with the query, rather than bm25s' argpartition over
        # the whole corpus, which is slow (~6 ms at 100k passages) on score arrays that are mostly zeros.
        scores = self.retriever.get_scores_from_ids(token_ids)
        hits = np.flatnonzero(scores)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        if len(hits) < k:  # pad with unmatched (score 0) documents, as retrievers return k results regardless
            hits = np.concatenate([hits, np.setdiff1d(np.arange(k + len(hits)), hits)[: k - len(hits)]])
        return hits, scores[hits]

    def _search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        queries = self.tokenizer.tokenize(
            [r.query for r in requests], update_vocab=False, return_as="ids", show_progress=False
        )
        results = []
        for request, token_ids in zip(requests, queries):
            indices, scores = self._top_k(token_ids, min(request.k, len(self.docs)))
            hits = [(self.docs[int(i)], float(s)) for i, s in zip(indices, scores)]
            results.append([Document(d.text, d.title, d.id, s) for d, s in hits])
        return results
