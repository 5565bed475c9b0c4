"""The results directory of an evaluation: per-question jsonl, results.json, table.md (the paper's Table 3
layout: rows = methods, columns = datasets + average), and PNG bar charts with CI whiskers.

Scores in the table and plots are percentages (the paper's convention); results.json keeps fractions.
"""

from __future__ import annotations

import json
from pathlib import Path

from zerosearch.data.formats import iter_jsonl
from zerosearch.errors import UserError
from zerosearch.eval.metrics import AVERAGE, METRICS

METRIC_NAMES = {"em": "EM", "cover_em": "Cover-EM", "f1": "F1"}


def columns(summaries: dict[str, dict]) -> list[str]:
    """Datasets in a stable order, then the average."""
    sources = sorted({s for summary in summaries.values() for s in summary if s != AVERAGE})
    return [*sources, AVERAGE]


def cell(ci: dict | None) -> str:
    if ci is None:
        return "–"
    return f"{100 * ci['mean']:.1f} ({100 * ci['lo']:.1f}–{100 * ci['hi']:.1f})"


def describe(meta: dict) -> str:
    engine = meta.get("engine") or "none"
    return f"model `{meta.get('model')}` · engine `{engine}` · data `{meta.get('data')}` · greedy decoding"


def table_markdown(summaries: dict[str, dict], meta: dict) -> str:
    cols = columns(summaries)
    head = "| Method | " + " | ".join("Avg." if c == AVERAGE else c for c in cols) + " |"
    rule = "|---|" + "---:|" * len(cols)
    lines = [
        "# Evaluation",
        "",
        describe(meta),
        "",
        "Cells: mean (bootstrap 95% CI), in %. Avg. = mean over datasets.",
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
    ax.set_xticks(x, ["Avg." if c == AVERAGE else c for c in cols])
    ax.set_ylabel(f"{METRIC_NAMES[metric]} (%)")
    ax.set_title(f"{METRIC_NAMES[metric]} · engine {meta.get('engine') or 'none'} · {meta.get('model')}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(out: str | Path, records: dict[str, list[dict]], summaries: dict[str, dict], meta: dict) -> dict:
    """Write the results directory; returns what results.json holds."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for method, recs in records.items():
        with (out / f"{method}.jsonl").open("w") as f:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / "table.md").write_text(table_markdown(summaries, meta))
    for metric in METRICS:
        plot(summaries, out / f"{metric}.png", metric, meta)
    results = {
        **meta,
        "methods": summaries,
        "files": {
            "table": "table.md",
            "plots": [f"{m}.png" for m in METRICS],
            "records": {m: f"{m}.jsonl" for m in records},
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def load_records(path: str | Path, method: str | None = None) -> tuple[str, list[dict]]:
    """(label, records) from a per-question jsonl file, or from a results directory (`method` picks one of several)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl"))
        if method:
            files = [p for p in files if p.stem == method]
        if len(files) != 1:
            found = ", ".join(p.stem for p in sorted(path.glob("*.jsonl"))) or "none"
            want = f"method {method!r}" if method else "exactly one method (pass --method)"
            raise UserError(f"{path}: expected {want}; per-question files found: {found}")
        path = files[0]
    if not path.exists():
        raise UserError(f"result file not found: {path}")
    records = []
    for n, r in iter_jsonl(path):
        missing = [k for k in ("id", *METRICS) if k not in r]
        if missing:
            raise UserError(f"{path}: line {n}: a per-question record needs the field(s) {', '.join(missing)}")
        records.append(r)
    if not records:
        raise UserError(f"{path}: no records")
    return f"{path.parent.name}/{path.stem}", records
