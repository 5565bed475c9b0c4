"""QA dataset records and the file formats people have (to be completed by the mini-world issue)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class QAExample:
    id: str
    question: str
    golden_answers: list[str]
    data_source: str = ""
    meta: dict = field(default_factory=dict)  # e.g. question type, supporting passage ids
