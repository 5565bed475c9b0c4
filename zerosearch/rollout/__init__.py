"""Multi-turn search rollouts: protocol parsing, the batched state machine, and the Trajectory record."""

from zerosearch.rollout.protocol import Action, parse_action
from zerosearch.rollout.rollout import run_rollouts
from zerosearch.rollout.trajectory import Search, Segment, Trajectory, read_jsonl, write_jsonl

__all__ = ["Action", "Search", "Segment", "Trajectory", "parse_action", "read_jsonl", "run_rollouts", "write_jsonl"]
