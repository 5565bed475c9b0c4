"""The noise curriculum: the probability that a search returns noisy documents at training step i of m.

Eq. 1 of the paper:  p_i = p_s + (b^(i/m) - 1) / (b - 1) * (p_e - p_s).
`constant` is the paper's "Random" ablation (a fixed p) and `linear` the b -> 1 limit of Eq. 1.
"""

from __future__ import annotations

import math

SCHEDULES = ("exponential", "linear", "constant")


def _check(step: int, total_steps: int, p_start: float, p_end: float, base: float) -> None:
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not 0 <= step <= total_steps:
        raise ValueError(f"step must be in [0, total_steps={total_steps}], got {step}")
    for name, p in (("p_start", p_start), ("p_end", p_end)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    if base <= 0:
        raise ValueError(f"base must be > 0, got {base}")


def noise_probability(
    step: int, total_steps: int, p_start: float = 0.0, p_end: float = 0.5, base: float = 4.0
) -> float:
    _check(step, total_steps, p_start, p_end, base)
    x = step / total_steps
    # (b^x - 1)/(b - 1) -> x as b -> 1; expm1/log keep it exact near b = 1 instead of dividing by ~0.
    frac = x if abs(base - 1.0) < 1e-9 else math.expm1(x * math.log(base)) / (base - 1.0)
    return p_start + frac * (p_end - p_start)


def linear_probability(step: int, total_steps: int, p_start: float = 0.0, p_end: float = 0.5) -> float:
    return noise_probability(step, total_steps, p_start, p_end, base=1.0)


def constant_probability(step: int, total_steps: int, p: float = 0.25) -> float:
    _check(step, total_steps, p, p, 1.0)
    return p


def schedule(name: str, total_steps: int, p_start: float = 0.0, p_end: float = 0.5, base: float = 4.0) -> list[float]:
    """Per-step probabilities for steps 0..total_steps; `constant` uses p_end as its fixed p."""
    if name == "exponential":
        return [noise_probability(i, total_steps, p_start, p_end, base) for i in range(total_steps + 1)]
    if name == "linear":
        return [linear_probability(i, total_steps, p_start, p_end) for i in range(total_steps + 1)]
    if name == "constant":
        return [constant_probability(i, total_steps, p_end) for i in range(total_steps + 1)]
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
