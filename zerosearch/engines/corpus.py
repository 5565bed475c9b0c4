"""The retrieval corpus: jsonl lines `{"id", "contents": "Title\\ntext"}`, and where its indexes live.

`Corpus` never holds the passages in Python objects: it keeps the byte offset of each line (a numpy int64
array, 8 bytes a passage, built once and memory-mapped from the cache directory) and parses a passage when
it is asked for, so that Search-R1's 21M-passage wiki-18 costs 168 MB of offsets (see docs/engines.md).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from zerosearch.config import cache_dir
from zerosearch.data import resolve_corpus
from zerosearch.data.formats import iter_jsonl
from zerosearch.engines.base import Document
from zerosearch.errors import UserError


def resolve(spec: str | Path) -> Path:
    """A corpus spec (a jsonl path, or `mini-world:corpus`) to an existing, checked file."""
    return resolve_corpus(str(spec))


def _document(row: dict, where: str) -> Document:
    if not isinstance(row, dict) or not isinstance(row.get("contents"), str):
        raise UserError(f"{where}: each line needs a string field 'contents'")
    title, _, text = row["contents"].partition("\n")
    doc_id = row.get("id")
    return Document(text=text.strip(), title=title.strip() or None, id=None if doc_id is None else str(doc_id))


def _line_offsets(path: Path) -> np.ndarray:
    """Byte offset of each non-blank line, read in blocks (about 10 s for 21M lines)."""
    starts, position = [], 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                starts.append(position)
            position += len(line)
    return np.asarray(starts, dtype=np.int64)


class Corpus:
    """A corpus file opened lazily: `len`, `corpus[i]` (a Document parsed on demand) and iteration in order.
    The offsets live in `offsets_dir` (default: the cache directory, keyed by the file's fingerprint)."""

    def __init__(self, spec: str | Path, offsets_dir: Path | None = None):
        self.path = resolve(spec)

        def build(tmp: Path) -> None:
            np.save(tmp / "offsets.npy", _line_offsets(self.path))

        offsets_dir = offsets_dir or index_dir("offsets", self.path)
        build_once(offsets_dir, build)
        self.offsets = np.load(offsets_dir / "offsets.npy", mmap_mode="r")
        if not len(self.offsets):
            raise UserError(f"{self.path}: the corpus holds no documents")
        self._file = open(self.path, "rb")  # noqa: SIM115 - held for the engine's lifetime, read under the lock
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> Document:
        with self._lock:
            self._file.seek(int(self.offsets[i]))
            raw = self._file.readline()
        where = f"{self.path}: passage {int(i) + 1} (byte {int(self.offsets[i])})"
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{where}: not a valid JSON line ({e})") from None
        return _document(row, where)

    def __iter__(self) -> Iterator[Document]:
        for lineno, row in iter_jsonl(self.path):
            yield _document(row, f"{self.path}: line {lineno}")


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
