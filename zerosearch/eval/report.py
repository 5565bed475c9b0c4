"""The results directory of an evaluation: results.jsonl (one record per question and method, appended as
batches finish, so that an interrupted evaluation resumes), results.json, table.md (the paper's Table 3 layout:
rows = methods, columns = datasets in the paper's order + averages), and PNG bar charts with CI whiskers.

Scores in the table and plots are percentages (the paper's convention); results.json keeps fractions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from zerosearch.data.formats import iter_jsonl
from zerosearch.errors import UserError
from zerosearch.eval.metrics import AVERAGE, GROUPS, METRICS, source_of, source_order

METRIC_NAMES = {"em": "EM", "cover_em": "Cover-EM", "f1": "F1"}
RECORDS = "results.jsonl"
AVERAGES = (*GROUPS, AVERAGE)
TITLES = {
    "nq": "NQ",
    "triviaqa": "TriviaQA",
    "popqa": "PopQA",
    "hotpotqa": "HotpotQA",
    "2wikimultihopqa": "2Wiki",
    "musique": "Musique",
    "bamboogle": "Bamboogle",
    "single_hop_average": "Single-hop avg.",
    "multi_hop_average": "Multi-hop avg.",
    AVERAGE: "Avg.",
}


def columns(summaries: dict[str, dict]) -> list[str]:
    """Datasets (the paper's first, in its order), then the averages present."""
    keys = {s for summary in summaries.values() for s in summary}
    return [*sorted(keys - set(AVERAGES), key=source_order), *(a for a in AVERAGES if a in keys)]


def title(column: str) -> str:
    return TITLES.get(column, column)


def cell(ci: dict | None) -> str:
    if ci is None:
        return "–"
    return f"{100 * ci['mean']:.1f} ({100 * ci['lo']:.1f}–{100 * ci['hi']:.1f})"


def describe(meta: dict) -> str:
    engine = meta.get("engine") or "none"
    line = f"model `{meta.get('model')}` · engine `{engine}` · data `{meta.get('data')}` · greedy decoding"
    if meta.get("oracle"):
        line += (
            "\n\n**ORACLE**: the engine was given each question's gold answers (a simulator), so these scores "
            "are not a search engine's."
        )
    return line


def table_markdown(summaries: dict[str, dict], meta: dict) -> str:
    cols = columns(summaries)
    head = "| Method | " + " | ".join(map(title, cols)) + " |"
    rule = "|---|" + "---:|" * len(cols)
    lines = [
        "# Evaluation",
        "",
        describe(meta),
        "",
        "Cells: mean (bootstrap 95% CI), in %. Averages are means over datasets.",
        "",
    ]
    for metric in METRICS:
        lines += [f"## {METRIC_NAMES[metric]}", "", head, rule]
        for method, summary in summaries.items():
            lines.append(f"| {method} | " + " | ".join(cell(summary.get(c, {}).get(metric)) for c in cols) + " |")
        lines.append("")
    lines += ["## Searches per question · answer rate", "", head, rule]
    for method, summary in summaries.items():
        row = [
            f"{summary[c]['searches_per_question']:.2f} · {100 * summary[c]['answer_rate']:.0f}%"
            if c in summary
            else "–"
            for c in cols
        ]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(summaries: dict[str, dict], path: Path, metric: str, meta: dict) -> None:
    """Grouped bars, one group per dataset (and the average), one bar per method, 95% CI whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = columns(summaries)
    width = 0.8 / max(len(summaries), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(cols) * max(1, len(summaries)) ** 0.5 + 2), 3.6))
    x = np.arange(len(cols))
    for i, (method, summary) in enumerate(summaries.items()):
        cis = [summary.get(c, {}).get(metric) or {"mean": 0.0, "lo": 0.0, "hi": 0.0} for c in cols]
        means = np.array([100 * ci["mean"] for ci in cis])
        err = np.array([[100 * (ci["mean"] - ci["lo"]) for ci in cis], [100 * (ci["hi"] - ci["mean"]) for ci in cis]])
        ax.bar(x + (i - (len(summaries) - 1) / 2) * width, means, width, yerr=err, capsize=3, label=method)
    ax.set_xticks(x, [title(c) for c in cols])
    ax.set_ylabel(f"{METRIC_NAMES[metric]} (%)")
    oracle = " (ORACLE)" if meta.get("oracle") else ""
    ax.set_title(
        f"{METRIC_NAMES[metric]} · engine {meta.get('engine') or 'none'}{oracle} · {meta.get('model')}", fontsize=9
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _records_path(out: Path) -> Path:
    """OUT/results.jsonl, with a torn last line (a kill during an append) cut off so that appends stay valid."""
    path = out / RECORDS
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
    return path


def read_records(out: str | Path) -> dict[str, list[dict]]:
    """{method: records} already in OUT/results.jsonl (none when there is no such file)."""
    path = _records_path(Path(out))
    by_method: dict[str, list[dict]] = {}
    if path.exists():
        for _, r in iter_jsonl(path):
            by_method.setdefault(r.get("method", ""), []).append(r)
    return by_method


def append_records(out: str | Path, method: str, records: list[dict]) -> None:
    """Append one batch's records (tagged with `method`) to OUT/results.jsonl, flushed to disk."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps({"method": method, **r}, ensure_ascii=False) + "\n" for r in records)
    with _records_path(out).open("a", encoding="utf-8") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())


def record_key(record: dict) -> tuple[str, str]:
    return source_of(record), str(record["id"])


def write_results(out: str | Path, records: dict[str, list[dict]], summaries: dict[str, dict], meta: dict) -> dict:
    """Write the results directory; returns what results.json holds.

    results.jsonl ends up holding exactly `records` for the methods given; other methods' records stay.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    others = {m: rs for m, rs in read_records(out).items() if m not in records}
    tmp = out / (RECORDS + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for method, recs in {**others, **records}.items():
            f.writelines(json.dumps({**r, "method": method}, ensure_ascii=False) + "\n" for r in recs)
    os.replace(tmp, out / RECORDS)
    (out / "table.md").write_text(table_markdown(summaries, meta))
    for metric in METRICS:
        plot(summaries, out / f"{metric}.png", metric, meta)
    results = {
        **meta,
        "methods": summaries,
        "files": {"table": "table.md", "plots": [f"{m}.png" for m in METRICS], "records": RECORDS},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def load_records(path: str | Path, method: str | None = None) -> tuple[str, list[dict]]:
    """(label, records) of one method from a per-question jsonl file or a results directory; `method` picks one
    where the file holds several."""
    path = Path(path)
    file = path / RECORDS if path.is_dir() else path
    if not file.exists():
        raise UserError(f"result file not found: {file}")
    by_method: dict[str, list[dict]] = {}
    for n, r in iter_jsonl(file):
        missing = [k for k in ("id", *METRICS) if k not in r]
        if missing:
            raise UserError(f"{file}: line {n}: a per-question record needs the field(s) {', '.join(missing)}")
        by_method.setdefault(r.get("method", ""), []).append(r)
    if method is None and len(by_method) > 1:
        raise UserError(f"{file}: holds several methods, pass --method (one of {', '.join(sorted(by_method))})")
    if method is not None and method not in by_method:
        raise UserError(f"{file}: no records of method {method!r} (found: {', '.join(sorted(by_method)) or 'none'})")
    name, records = (method, by_method[method]) if method is not None else next(iter(by_method.items()), ("", []))
    if not records:
        raise UserError(f"{file}: no records")
    stem = path.name if path.is_dir() else path.parent.name
    return f"{stem}/{name or path.stem}", records
