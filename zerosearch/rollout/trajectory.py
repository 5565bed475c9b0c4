"""The record of one multi-turn rollout, serializable to jsonl."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Segment:
    role: str  # "policy" (generated, in the loss) | "env" (observation or invalid-action text, context only)
    text: str
    n_tokens: int


@dataclass
class Search:
    query: str
    mode: str  # "useful" | "noisy": the curriculum's draw (real engines receive it and ignore it)
    documents: list[dict]


@dataclass
class Trajectory:
    question: str
    golden_answers: list[str]
    prompt_ids: list[int] = field(default_factory=list)
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)  # 1 = policy token, 0 = environment token
    segments: list[Segment] = field(default_factory=list)
    searches: list[Search] = field(default_factory=list)
    logprobs: list[float] | None = None  # sampling log-probs of the response tokens (0.0 at env tokens)
    answer: str | None = None
    reward: float = 0.0  # the reward that trained it: run_rollouts' `reward` metric (f1 by default) + format bonus
    em: float = 0.0
    n_turns: int = 0
    stop_reason: str = ""  # answer | max_turns | context_full | max_tokens | search_error
    id: str = ""
    data_source: str = ""

    @property
    def response_text(self) -> str:
        return "".join(s.text for s in self.segments)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Trajectory:
        d = dict(d)
        d["segments"] = [Segment(**s) for s in d.get("segments", [])]
        d["searches"] = [Search(**s) for s in d.get("searches", [])]
        return cls(**d)


def write_jsonl(trajectories: list[Trajectory], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for t in trajectories:
            f.write(json.dumps(t.to_dict(), ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[Trajectory]:
    with Path(path).open() as f:
        return [Trajectory.from_dict(json.loads(line)) for line in f if line.strip()]
