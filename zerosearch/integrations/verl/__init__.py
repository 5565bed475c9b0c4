"""verl with our engines, simulator and curriculum: a verl tool, its parquet data, and a reward function
(see docs/integrations.md; an example config is in examples/verl/).
This module (data, reward) does not import verl; `tool.py` does.

- `tool.ZeroSearchTool` (class_name `zerosearch.integrations.verl.tool.ZeroSearchTool` in a tool yaml), a
  `verl.tools.base_tool.BaseTool`: the policy calls a `search` function (verl's tool-calling agent loop,
  `multi_turn.format=hermes`); the tool answers with our engine (in-process, or our search server with
  `engine.name: remote`), conditioned on the sample's question and gold answers, which verl hands it per sample
  as `create_kwargs` from the dataset's `extra_info.tools_kwargs`.
- The curriculum: each search is noisy with probability p(step) of Eq. 1. verl does not tell a tool the training
  step, so the data carries it: `write_parquet` writes the rows in training order, one `step` per batch of
  `train_batch_size` rows, and the run must read them in that order (`data.shuffle=False`). Rows without a step
  (validation) get useful documents.
- `compute_score`, a verl custom reward function: `rewards.score` of the response against the gold answers.

Departure from the paper's protocol: the policy searches through verl's tool calls (`<tool_call>` in the chat
template), not `<search>` tags, and the documents come back as a tool message; the text of the documents is the
same (`Doc 1(Title: …) …`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from zerosearch.data.formats import QAExample
from zerosearch.errors import ConfigError
from zerosearch.prompts import TOOL_PROMPT
from zerosearch.rewards import score

TOOL_NAME = "search"
SCHEMA = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Search the web for documents about a query.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "the search query"}},
            "required": ["query"],
        },
    },
}


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """verl custom reward function (`reward.custom_reward_function`): F1 of the response's last answer block
    (`rewards.score`); `extra_info.reward` picks em/cover_em instead, `extra_info.format_reward` the bonus."""
    extra_info = extra_info or {}
    golds = ground_truth["target"] if isinstance(ground_truth, dict) else ground_truth
    scores = score(solution_str, list(golds), extra_info.get("reward", "f1"), extra_info.get("format_reward", 0.0))
    return {"score": scores["reward"], "em": scores["em"], "f1": scores["f1"]}


def _question_mark(question: str) -> str:
    question = question.strip()  # as prompts.policy_prompt and Search-R1's data preparation do
    return question if not question or question.endswith("?") else question + "?"


def rows(examples: Sequence[QAExample], split: str, steps: Sequence[int | None]) -> list[dict]:
    """verl's RLHFDataset rows: chat prompt, reward ground truth, and our tool's per-sample arguments."""
    out = []
    for i, (ex, step) in enumerate(zip(examples, steps)):
        create = {"question": ex.question, "golden_answers": list(ex.golden_answers)}
        if step is not None:
            create["step"] = step
        out.append(
            {
                "data_source": ex.data_source or "zerosearch",
                "prompt": [{"role": "user", "content": TOOL_PROMPT.format(question=_question_mark(ex.question))}],
                "ability": "fact-reasoning",
                "reward_model": {"style": "rule", "ground_truth": {"target": list(ex.golden_answers)}},
                "agent_name": "tool_agent",
                "extra_info": {
                    "split": split,
                    "index": i,
                    "need_tools_kwargs": True,
                    "tools_kwargs": {TOOL_NAME: {"create_kwargs": create}},
                },
            }
        )
    return out


def write_parquet(
    examples: Sequence[QAExample],
    path: str | Path,
    *,
    split: str = "train",
    batch_size: int | None = None,
    steps: int | None = None,
    seed: int = 0,
) -> Path:
    """Write verl parquet. For training (`batch_size` and `steps` given): `steps` x `batch_size` rows, a seeded
    reshuffle per pass over the questions, row r carrying step r // batch_size; train with `data.shuffle=False`,
    `data.train_batch_size=batch_size` and `trainer.total_training_steps=steps`. Without them (validation): the
    questions as they are, no step (useful documents)."""
    import pandas as pd

    if not examples:
        raise ConfigError(f"no questions to write to {path}")
    if (batch_size is None) != (steps is None):
        raise ConfigError("give both batch_size and steps (training data), or neither (validation data)")
    if batch_size is None:
        ordered, step_of = list(examples), [None] * len(examples)
    else:
        if batch_size <= 0 or steps <= 0:
            raise ConfigError(f"batch_size and steps must be > 0, got {batch_size} and {steps}")
        ordered, rng = [], random.Random(seed)
        while len(ordered) < batch_size * steps:
            epoch = list(examples)
            rng.shuffle(epoch)
            ordered += epoch
        ordered = ordered[: batch_size * steps]
        step_of = [r // batch_size for r in range(len(ordered))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows(ordered, split, step_of)).to_parquet(path)
    return path
