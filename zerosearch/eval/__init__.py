"""Evaluation: the paper's baselines and ours (methods), metrics with bootstrap CIs, reports, cost, chat."""

from zerosearch.eval.methods import METHODS, evaluate

__all__ = ["METHODS", "evaluate"]
