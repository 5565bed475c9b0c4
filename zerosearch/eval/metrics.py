"""Aggregate per-question scores: means with percentile-bootstrap 95% CIs, per dataset and averaged.

"average" is the mean over datasets (as the paper's Table 3 does), not over questions; its CI resamples
each dataset's questions independently (a stratified bootstrap) and averages the resampled means. When both
single-hop (NQ, TriviaQA, PopQA) and multi-hop datasets are present, their two averages are added the same way.
Datasets come in the paper's order, then any others alphabetically.
`paired_difference` resamples the same question indices for both systems (a paired bootstrap).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zerosearch.data.prepare import DATASETS, MULTI_HOP, SINGLE_HOP
from zerosearch.errors import UserError

METRICS = ("em", "cover_em", "f1")
AVERAGE = "average"
GROUPS = {"single_hop_average": SINGLE_HOP, "multi_hop_average": MULTI_HOP}


def source_of(record: dict) -> str:
    return record.get("data_source") or "all"


def source_order(source: str) -> tuple:
    """Sort key: the paper's datasets in its order, then the others alphabetically."""
    return (DATASETS.index(source), "") if source in DATASETS else (len(DATASETS), source)


def group_by_source(records: Sequence[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(source_of(r), []).append(r)
    return dict(sorted(groups.items(), key=lambda item: source_order(item[0])))


def averages(sources) -> dict[str, list[str]]:
    """{average key: the sources it averages}: the hop groups (only when both are present), then all of them."""
    sources = list(sources)
    groups = {name: [s for s in sources if s in members] for name, members in GROUPS.items()}
    both = all(groups.values())
    return {**(groups if both else {}), AVERAGE: sources}


def _boot_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """n_boot resampled means of a 1-D array (or of each row's paired differences)."""
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    return values[idx].mean(axis=1)


def _interval(point: float, boots: np.ndarray) -> dict:
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mean": float(point), "lo": float(lo), "hi": float(hi)}


def _columns(groups: dict[str, list[dict]], key) -> dict[str, np.ndarray]:
    return {src: np.array([float(key(r)) for r in rs]) for src, rs in groups.items()}


def _with_average(cols: dict[str, np.ndarray], n_boot: int, seed: int) -> dict[str, dict]:
    """{source: {mean, lo, hi}} plus the averages over sources, one bootstrap stream per source."""
    rng = np.random.default_rng(seed)
    out, boots = {}, {}
    for src, values in cols.items():
        boots[src] = _boot_means(values, n_boot, rng)
        out[src] = _interval(values.mean(), boots[src])
    for name, members in averages(cols).items():
        out[name] = _interval(np.mean([cols[s].mean() for s in members]), np.mean([boots[s] for s in members], axis=0))
    return out


def summarize(records: Sequence[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """{source: {em, cover_em, f1: {mean, lo, hi}, searches_per_question, answer_rate, n}, ..., "average": {...}}."""
    if not records:
        raise UserError("no evaluation records to summarize (empty dataset?)")
    groups = group_by_source(records)
    summary: dict[str, dict] = {src: {"n": len(rs)} for src, rs in groups.items()}
    for name, members in averages(groups).items():
        summary[name] = {"n": sum(len(groups[s]) for s in members)}
    for metric in METRICS:
        for src, ci in _with_average(_columns(groups, lambda r, m=metric: r[m]), n_boot, seed).items():
            summary[src][metric] = ci
    for name, key in (("searches_per_question", lambda r: r["n_searches"]), ("answer_rate", lambda r: r["answered"])):
        cols = _columns(groups, key)
        for src, values in cols.items():
            summary[src][name] = float(values.mean())
        for average, members in averages(cols).items():
            summary[average][name] = float(np.mean([cols[s].mean() for s in members]))
    return summary


def paired_difference(a: Sequence[dict], b: Sequence[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """B − A per source and averaged, each metric as {mean, lo, hi, p_le_0} from a paired bootstrap on question ids.

    p_le_0 is the share of bootstrap differences ≤ 0: a one-sided check of "B is better than A".
    """
    by_id_a = {(source_of(r), str(r["id"])): r for r in a}
    by_id_b = {(source_of(r), str(r["id"])): r for r in b}
    if set(by_id_a) != set(by_id_b):
        only_a, only_b = sorted(set(by_id_a) - set(by_id_b)), sorted(set(by_id_b) - set(by_id_a))
        example = (only_a or only_b)[0]
        raise UserError(
            f"the two result files must hold the same questions: {len(only_a)} only in A, {len(only_b)} only in B "
            f"(e.g. data_source={example[0]!r} id={example[1]!r})"
        )
    keys = sorted(by_id_a, key=lambda key: (source_order(key[0]), key[1]))
    groups: dict[str, list[tuple]] = {}
    for key in keys:
        groups.setdefault(key[0], []).append(key)
    out: dict[str, dict] = {src: {"n": len(ks)} for src, ks in groups.items()}
    for name, members in averages(groups).items():
        out[name] = {"n": sum(len(groups[s]) for s in members)}
    for metric in METRICS:
        cols = {
            src: np.array([by_id_b[k][metric] - by_id_a[k][metric] for k in ks], dtype=float)
            for src, ks in groups.items()
        }
        rng = np.random.default_rng(seed)
        boots = {src: _boot_means(v, n_boot, rng) for src, v in cols.items()}
        for src, v in cols.items():
            out[src][metric] = {**_interval(v.mean(), boots[src]), "p_le_0": float((boots[src] <= 0).mean())}
        for name, members in averages(cols).items():
            avg = np.mean([boots[s] for s in members], axis=0)
            out[name][metric] = {
                **_interval(np.mean([cols[s].mean() for s in members]), avg),
                "p_le_0": float((avg <= 0).mean()),
            }
    return out
