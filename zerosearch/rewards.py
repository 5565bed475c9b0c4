"""Answer extraction and the QA metrics (SQuAD-style normalization), as pure functions.

`exact_match` is the strict metric of the paper's tables; `cover_exact_match` (a gold answer contained in
the prediction) is what the reference code calls EM; `f1_score` is the paper's training reward.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(s: str) -> str:
    s = str(s).lower().translate(_PUNCT)
    return " ".join(_ARTICLES_RE.sub(" ", s).split())


def extract_answer(text: str | None) -> str | None:
    """The last complete `<answer>…</answer>` block, stripped; None when there is none."""
    if not text:
        return None
    matches = _ANSWER_RE.findall(text)
    return matches[-1].strip() if matches else None


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """A normalized gold answer occurs in the normalized text as whole words (so `1911` is not in `19111`)."""
    haystack = f" {normalize_answer(text)} "
    return any((g := normalize_answer(a)) and f" {g} " in haystack for a in answers)


def _golds(golds: Sequence[str] | str) -> list[str]:
    return [golds] if isinstance(golds, str) else [str(g) for g in golds]


def exact_match(pred: str | None, golds: Sequence[str] | str) -> float:
    if not pred:
        return 0.0
    p = normalize_answer(pred)
    return float(any(p == normalize_answer(g) for g in _golds(golds)))


def cover_exact_match(pred: str | None, golds: Sequence[str] | str) -> float:
    if not pred:
        return 0.0
    p = normalize_answer(pred)
    return float(any((g := normalize_answer(gold)) and g in p for gold in _golds(golds)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(pred: str | None, golds: Sequence[str] | str) -> float:
    if not pred:
        return 0.0
    p = normalize_answer(pred).split()
    return max((_f1(p, normalize_answer(g).split()) for g in _golds(golds)), default=0.0)


def format_reward(text: str | None, bonus: float = 0.1) -> float:
    """Optional shaping (off by default; the paper has none): `bonus` when a response ends in one answer block."""
    if not text:
        return 0.0
    return bonus if extract_answer(text) is not None and text.rstrip().endswith("</answer>") else 0.0


REWARDS = ("f1", "em", "cover_em")


def metrics(answer: str | None, golds: Sequence[str] | str) -> dict[str, float]:
    """EM, cover-EM and F1 of an answer that is already extracted (evaluation of methods without answer blocks)."""
    return {
        "em": exact_match(answer, golds),
        "cover_em": cover_exact_match(answer, golds),
        "f1": f1_score(answer, golds),
    }


def score(response: str | None, golds: Sequence[str] | str, reward: str = "f1", format_bonus: float = 0.0) -> dict:
    """The one scoring function of training and evaluation: the metrics of a response's last answer block, plus
    `reward`, the value that trains the policy (the chosen metric, plus the optional format bonus)."""
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r} (one of {', '.join(REWARDS)})")
    out = metrics(extract_answer(response), golds)
    out["reward"] = out[reward] + format_reward(response, format_bonus)
    return out
