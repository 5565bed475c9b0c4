"""QA dataset records and the file formats people have, read and written through one record type.

- ZeroSearch / Search-R1 parquet (`.parquet`): `id`, `question`, `golden_answers`, `data_source`, `prompt` (chat
  messages holding the policy prompt), `ability`, `reward_model.ground_truth.target`, `extra_info.{split,index}`
  — the schema their verl pipeline trains on, written exactly as their `data_process/nq_search.py` does (the
  question gets a closing "?", the prompt a closing newline). We add one optional column, `metadata` (a JSON
  string), so that question types and supporting passages survive a round trip; their pipeline ignores it.
- FlashRAG jsonl (`.jsonl`): `id`, `question`, `golden_answers`, optional `data_source` and `metadata`.
- Plain jsonl / csv: `question` plus `golden_answers`, `answers` (a list) or `answer` (one string); in csv a
  list is written as JSON.

Every reader checks each row and raises `DataError` naming the file, the place and the field: `line N` in text
files (jsonl, csv: the physical line, the csv header being line 1), `row N` in parquet, both counted from 1.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from zerosearch import prompts
from zerosearch.errors import UserError

PARQUET_COLUMNS = ("data_source", "prompt", "question", "golden_answers", "reward_model", "extra_info")
SPLIT_NAMES = {"train", "dev", "test", "val", "valid", "validation"}
FORMATS = (".parquet", ".jsonl", ".csv")


class DataError(UserError, ValueError):
    """A dataset or corpus file is missing, malformed, or not what was asked for; the message says where."""


@dataclass
class QAExample:
    id: str
    question: str
    golden_answers: list[str]
    data_source: str = ""
    meta: dict = field(default_factory=dict)  # e.g. question type, supporting passage ids, per-hop sub-questions


def _suffix(path: Path) -> str:
    if path.suffix not in FORMATS:
        raise DataError(f"{path}: unknown dataset format {path.suffix!r} (expected one of {', '.join(FORMATS)})")
    return path.suffix


def _default_source(path: Path) -> str:
    """FlashRAG lays datasets out as `<dataset>/<split>.jsonl`: name the source after the folder then."""
    return path.parent.name if path.stem.lower() in SPLIT_NAMES and path.parent.name else path.stem


def _answers(value, where: str, name: str) -> list[str]:
    if isinstance(value, str) and name == "answer":
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise DataError(f"{where}: field {name!r} must be a non-empty list of strings, got {value!r}")
    out = []
    for a in value:
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            a = str(a)  # some datasets store numeric answers (years) as numbers
        if not isinstance(a, str) or not a.strip():
            raise DataError(f"{where}: field {name!r} must be a non-empty list of strings, got {value!r}")
        out.append(a)
    return out


def _example(row: dict, where: str, index: int, source: str) -> QAExample:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: field 'question' is missing or empty")
    name = next((n for n in ("golden_answers", "answers", "answer") if row.get(n) is not None), None)
    if name is None:
        raise DataError(f"{where}: no answers (expected a field 'golden_answers', 'answers' or 'answer')")
    meta = row.get("metadata") or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: field 'metadata' is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'metadata' must be an object, got {meta!r}")
    ident = row.get("id")
    return QAExample(
        str(ident) if ident is not None else str(index),
        question.strip(),
        _answers(row[name], where, name),
        str(row.get("data_source") or source),
        dict(meta),
    )


def _read_parquet(path: Path) -> list[QAExample]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a file that is not parquet
        raise DataError(f"{path}: not a readable parquet file ({e})") from None
    missing = [c for c in PARQUET_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(
            f"{path}: missing column {missing[0]!r} (a ZeroSearch/Search-R1 parquet has "
            f"{', '.join(PARQUET_COLUMNS)}; found {', '.join(table.column_names)})"
        )
    examples = []
    for i, row in enumerate(table.to_pylist()):
        ex = _example(row, f"{path}: row {i + 1}", i, _default_source(path))
        info = row.get("extra_info")
        if isinstance(info, dict):  # kept so that writing the file back reproduces it
            ex.meta.update({k: info[k] for k in ("split", "index") if info.get(k) is not None})
        examples.append(ex)
    return examples


def _line(path: Path | str, n: int, raw: bytes) -> str:
    """A line of a text file as UTF-8, or a DataError naming it (a wrong encoding or a binary file)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: line {n}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1}); save the file as UTF-8"
        ) from None
    if "\x00" in line:
        raise DataError(f"{path}: line {n}: contains a NUL byte (a binary or corrupted file?)")
    return line.removeprefix("\ufeff") if n == 1 else line  # an editor's byte-order mark


def iter_jsonl(path: str | Path):
    """(line number, object) for each non-blank line of a jsonl file; a bad line is a DataError naming it."""
    with open(path, "rb") as f:  # decoded line by line, so that an encoding error names its line
        for n, raw in enumerate(f, start=1):
            line = _line(path, n, raw)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {n}: expected a JSON object, got {type(row).__name__}")
            yield n, row


def _read_jsonl(path: Path) -> list[QAExample]:
    return [_example(row, f"{path}: line {n}", i, _default_source(path)) for i, (n, row) in enumerate(iter_jsonl(path))]


def _read_csv(path: Path) -> list[QAExample]:
    with open(path, "rb") as f:
        text = "".join(_line(path, n, raw) for n, raw in enumerate(f, start=1))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    examples, start = [], 1  # `start`: the line where the record being read begins
    try:
        columns = reader.fieldnames or []
        if "question" not in columns:
            raise DataError(f"{path}: missing column 'question' (found: {', '.join(columns) or 'no header'})")
        start = reader.line_num + 1
        for i, row in enumerate(reader):
            where = f"{path}: line {start}"
            for name in ("golden_answers", "answers"):
                if (row.get(name) or "").startswith("["):
                    try:
                        row[name] = json.loads(row[name])
                    except json.JSONDecodeError:
                        raise DataError(f"{where}: field {name!r} is not a JSON list: {row[name]!r}") from None
                elif row.get(name):
                    row[name] = [row[name]]
            examples.append(_example(row, where, i, _default_source(path)))
            start = reader.line_num + 1
    except csv.Error as e:  # e.g. a field over the size limit: most often an unclosed quote swallowing the file
        raise DataError(f"{path}: line {start}: not valid csv ({e}; an unclosed quote?)") from None
    return examples


def read_questions(path: str | Path) -> list[QAExample]:
    """Read a QA file in any supported format (chosen by extension)."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such file (the paper's datasets: `zerosearch data prepare NAME... --out DIR`, docs/data.md)"
        )
    examples = {".parquet": _read_parquet, ".jsonl": _read_jsonl, ".csv": _read_csv}[suffix](path)
    if not examples:
        raise DataError(f"{path}: no questions in the file")
    return examples


def _search_r1_question(question: str) -> str:
    question = question.strip()
    return question if question.endswith("?") else question + "?"


def _portable_meta(ex: QAExample) -> dict:
    return {k: v for k, v in ex.meta.items() if k not in ("split", "index")}


def write_parquet(examples: list[QAExample], path: Path, split: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = pa.list_(pa.string())
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("question", pa.string()),
            ("golden_answers", strings),
            ("data_source", pa.string()),
            ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.struct([("target", strings)]))])),
            ("extra_info", pa.struct([("split", pa.string()), ("index", pa.int64())])),
        ]
    )
    rows = []
    for i, ex in enumerate(examples):
        question = _search_r1_question(ex.question)
        rows.append(
            {
                "id": ex.id,
                "question": question,
                "golden_answers": list(ex.golden_answers),
                "data_source": ex.data_source,
                "prompt": [{"role": "user", "content": prompts.policy_prompt(question)}],
                "ability": "fact-reasoning",
                "reward_model": {"style": "rule", "ground_truth": {"target": list(ex.golden_answers)}},
                "extra_info": {"split": ex.meta.get("split", split), "index": ex.meta.get("index", i)},
            }
        )
    if any(_portable_meta(ex) for ex in examples):
        schema = schema.append(pa.field("metadata", pa.string()))
        for row, ex in zip(rows, examples):
            row["metadata"] = json.dumps(_portable_meta(ex), ensure_ascii=False)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def _flashrag_row(ex: QAExample) -> dict:
    row = {
        "id": ex.id,
        "question": ex.question,
        "golden_answers": list(ex.golden_answers),
        "data_source": ex.data_source,
    }
    return row | ({"metadata": ex.meta} if ex.meta else {})


def write_questions(examples: list[QAExample], path: str | Path, split: str = "test") -> Path:
    """Write examples in the format named by the extension; `split` fills the parquet `extra_info.split`."""
    path = Path(path)
    suffix = _suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        write_parquet(examples, path, split)
    elif suffix == ".jsonl":
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(_flashrag_row(ex), ensure_ascii=False) + "\n" for ex in examples)
    else:
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "question", "golden_answers", "data_source"])
            writer.writerows(
                [ex.id, ex.question, json.dumps(ex.golden_answers, ensure_ascii=False), ex.data_source]
                for ex in examples
            )
    return path
