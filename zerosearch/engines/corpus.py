"""The retrieval corpus: jsonl lines `{"id", "contents": "Title\\ntext"}`, and where its indexes live."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from zerosearch.config import cache_dir
from zerosearch.data.formats import iter_jsonl
from zerosearch.engines.base import Document
from zerosearch.errors import UserError


def resolve(spec: str | Path) -> Path:
    """A corpus spec (a jsonl path, or `mini-world:corpus`) to an existing file."""
    try:
        from zerosearch.data import resolve_corpus
    except ImportError:  # the data stage is optional for plain files
        resolve_corpus = None
    path = resolve_corpus(str(spec)) if resolve_corpus else Path(spec)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"corpus file not found: {path}")
    return path


def load(path: Path) -> list[Document]:
    docs = []
    for lineno, row in iter_jsonl(path):
        if not isinstance(row.get("contents"), str):
            raise UserError(f"{path}: line {lineno}: each line needs a string field 'contents'")
        title, _, text = row["contents"].partition("\n")
        doc_id = row.get("id")
        docs.append(
            Document(text=text.strip(), title=title.strip() or None, id=None if doc_id is None else str(doc_id))
        )
    if not docs:
        raise UserError(f"{path}: the corpus holds no documents")
    return docs


def fingerprint(path: Path) -> str:
    """Identifies a corpus file's content cheaply (path, size, mtime): an edited corpus gets a new index."""
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def index_dir(kind: str, path: Path, *extra: str) -> Path:
    key = hashlib.sha256("|".join((fingerprint(path), *extra)).encode()).hexdigest()[:16]
    return cache_dir() / "indexes" / f"{kind}-{path.stem}-{key}"


def build_once(target: Path, build: Callable[[Path], None]) -> bool:
    """Run `build(tmp_dir)` and move the result to `target` atomically, unless `target` exists. True if built."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        build(tmp)
        tmp.rename(target)
    except OSError:
        if not target.exists():  # another process won the race: theirs is as good as ours
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True
