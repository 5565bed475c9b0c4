"""The RL algorithms as pure tensor functions: advantages, the clipped surrogate, KL, entropy, aggregation.

Shapes: `B` trajectories, `T` response positions. `mask` is the loss mask (1 = a token the policy generated,
0 = an environment token or padding); every per-token quantity is aggregated through `aggregate`, the one
place that knows the loss-aggregation modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from zerosearch.errors import ConfigError

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token-mean",
    *,
    num_tokens: float | None = None,
    num_seqs: float | None = None,
) -> torch.Tensor:
    """Reduce a [B, T] per-token quantity to a scalar over the masked tokens.

    `num_tokens`/`num_seqs` override the denominators: a micro-batch divides by its whole mini-batch's
    counts, so that gradient accumulation over micro-batches equals one big batch exactly.
    """
    mask = mask.to(values.dtype)
    masked = values * mask
    if mode == "token-mean":
        return masked.sum() / (num_tokens if num_tokens is not None else mask.sum().clamp(min=1))
    if mode == "seq-mean-token-sum":
        per_seq = masked.sum(-1)
    elif mode == "seq-mean-token-mean":
        per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1)
    else:
        raise ValueError(f"loss aggregation must be one of {AGG_MODES}, got {mode!r}")
    return per_seq.sum() / (num_seqs if num_seqs is not None else values.shape[0])


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(values - mean) / std over the masked entries; zero outside the mask."""
    mask = mask.to(values.dtype)
    n = mask.sum().clamp(min=1)
    mean = (values * mask).sum() / n
    var = (((values - mean) * mask) ** 2).sum() / n
    return (values - mean) * torch.rsqrt(var + eps) * mask


# --- advantages ----------------------------------------------------------------------------------------
# Outcome rewards: one scalar per trajectory. Group algorithms see the rewards of n samples per prompt,
# grouped consecutively ([p0 s0, p0 s1, ..., p1 s0, ...]). `valid` [B] marks the trajectories that train:
# an excluded one (a search that failed for good) has an all-zero mask, a zero advantage, and is left out of its
# group's baseline, so one failure does not shift the advantages of the samples that ran normally.


def _groups(rewards: torch.Tensor, valid: torch.Tensor | None, group_size: int):
    groups = rewards.view(-1, group_size)
    v = torch.ones_like(groups) if valid is None else valid.to(groups.dtype).view(-1, group_size)
    return groups, v, v.sum(-1, keepdim=True)


def grpo_advantages(
    rewards: torch.Tensor,
    group_size: int,
    norm_by_std: bool = True,
    eps: float = 1e-6,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B] -> [B]: reward minus its group's mean, divided by the group's (unbiased) std when `norm_by_std`."""
    groups, v, n = _groups(rewards, valid, group_size)
    centred = (groups - (groups * v).sum(-1, keepdim=True) / n.clamp(min=1)) * v
    if norm_by_std:
        std = ((centred**2).sum(-1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()
        centred = centred / (std + eps)
    return centred.reshape(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """[B] -> [B]: reward minus the mean of the *other* samples of its group (leave-one-out baseline)."""
    groups, v, n = _groups(rewards, valid, group_size)
    others = ((groups * v).sum(-1, keepdim=True) - groups) / (n - 1).clamp(min=1)
    return ((groups - others) * v * (n > 1)).reshape(-1)


def zero_std_fraction(rewards: torch.Tensor, group_size: int, valid: torch.Tensor | None = None) -> float:
    """Share of groups whose (valid) rewards are all equal: no learning signal for a group baseline
    (TRL's `frac_reward_zero_std`)."""
    groups, v, _ = _groups(rewards, valid, group_size)
    big = torch.finfo(groups.dtype).max
    spread = torch.where(v.bool(), groups, -big).max(-1).values - torch.where(v.bool(), groups, big).min(-1).values
    return (spread <= 0).float().mean().item() if spread.numel() else 0.0


def outcome_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] -> [B, T]: each trajectory's reward placed on its last policy token (zero elsewhere)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, -1).max(-1).values
    token_rewards = torch.zeros(mask.shape, dtype=rewards.dtype, device=rewards.device)
    has_token = last >= 0
    token_rewards[has_token, last[has_token]] = rewards[has_token]
    return token_rewards


def discounted_returns(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """[B, T] reward-to-go over policy tokens; environment tokens are skipped (not time steps of the policy)."""
    returns = torch.zeros_like(token_rewards)
    running = torch.zeros_like(token_rewards[:, 0])
    for t in reversed(range(token_rewards.shape[1])):
        m = mask[:, t].bool()
        running = torch.where(m, token_rewards[:, t] + gamma * running, running)
        returns[:, t] = running * m
    return returns


def reinforce_pp_advantages(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """REINFORCE++: per-token discounted returns, whitened over every policy token of the batch -> [B, T]."""
    return masked_whiten(discounted_returns(outcome_rewards(rewards, mask), mask, gamma), mask)


def gae_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 1.0,
    whiten: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's GAE over policy tokens -> (advantages [B, T], returns [B, T]).

    The time steps are the policy's tokens only: an environment span between two policy tokens is skipped,
    so the value after a search is bootstrapped into the token that issued it.
    """
    token_rewards = outcome_rewards(rewards, mask)
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_adv = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        m = mask[:, t].bool()
        delta = token_rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = adv * m
        next_adv = torch.where(m, adv, next_adv)
        next_value = torch.where(m, values[:, t], next_value)
    returns = (advantages + values) * mask
    return (masked_whiten(advantages, mask) if whiten else advantages), returns


# --- the registry: each algorithm once, with its advantage function and what it needs ------------------


@dataclass(frozen=True)
class Algo:
    """`advantages(rewards [B], mask [B, T], valid [B], values [B, T] | None, rl) -> (advantages [B, T],
    returns [B, T] | None)`. `needs_values`: a value head (the critic), whose values before the update feed the
    advantages and the clipped value loss. `group`: a baseline over the samples of a prompt (>= 2 of them).
    Every algorithm needs the log-probs before the update once an update is off-policy (several epochs or
    mini-batches); on-policy, the ratio's denominator is the current log-prob, detached (same value, no pass)."""

    name: str
    advantages: Callable
    needs_values: bool = False
    group: bool = False


ALGOS: dict[str, Algo] = {}


def register_algo(name: str, *, needs_values: bool = False, group: bool = False):
    """Decorator adding an advantage function to the registry under `name` (the value of `rl.algo`)."""

    def add(fn: Callable) -> Callable:
        if name in ALGOS:
            raise ValueError(f"algorithm {name!r} is registered twice")
        ALGOS[name] = Algo(name, fn, needs_values, group)
        return fn

    return add


def get_algo(name: str) -> Algo:
    if name not in ALGOS:
        raise ConfigError(f"rl.algo must be one of {sorted(ALGOS)}, got {name!r}")
    return ALGOS[name]


def check(rl, world: int = 1) -> None:
    """What the config alone cannot check: the algorithm's name and needs, and the number of processes."""
    if get_algo(rl.algo).group and rl.samples_per_prompt < 2:
        raise ConfigError(
            f"rl.samples_per_prompt must be >= 2 for {rl.algo} (group baseline), got {rl.samples_per_prompt}"
        )
    if rl.prompts_per_step % world or rl.mini_batch % world:
        raise ConfigError(
            f"rl.prompts_per_step ({rl.prompts_per_step}) and rl.mini_batch ({rl.mini_batch}) must be divisible by "
            f"the number of processes ({world})"
        )


def _per_token(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return adv.unsqueeze(-1) * mask


@register_algo("grpo", group=True)
def _grpo(rewards, mask, valid, values, rl):
    return _per_token(grpo_advantages(rewards, rl.samples_per_prompt, rl.norm_adv_by_std, valid=valid), mask), None


@register_algo("rloo", group=True)
def _rloo(rewards, mask, valid, values, rl):
    return _per_token(rloo_advantages(rewards, rl.samples_per_prompt, valid), mask), None


@register_algo("reinforce")
def _reinforce(rewards, mask, valid, values, rl):
    """The reference implementation's plain REINFORCE: the raw reward on every policy token, no baseline."""
    return _per_token(rewards * valid, mask), None


@register_algo("reinforce_pp")
def _reinforce_pp(rewards, mask, valid, values, rl):
    return reinforce_pp_advantages(rewards, mask, rl.gamma), None


@register_algo("ppo", needs_values=True)
def _ppo(rewards, mask, valid, values, rl):
    return gae_advantages(rewards, values, mask, rl.gamma, rl.lam)


# --- losses --------------------------------------------------------------------------------------------


CHUNK = 512  # positions per log-softmax: its float32 temporaries are CHUNK x vocabulary, not the whole batch's


def _chunks(logits: torch.Tensor):
    flat = logits.reshape(-1, logits.shape[-1])
    for start in range(0, flat.shape[0], CHUNK):
        yield start, flat[start : start + CHUNK].float()


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(label) per position, for the taken tokens only and CHUNK positions at a time (as TRL's
    `selective_log_softmax`): no full-vocabulary log-softmax of the whole batch is materialized."""
    index = labels.reshape(-1, 1)
    parts = []
    for start, x in _chunks(logits):
        x = x / temperature
        parts.append(x.gather(-1, index[start : start + CHUNK]).squeeze(-1) - torch.logsumexp(x, -1))
    return torch.cat(parts).view(labels.shape)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution per position (CHUNK positions at a time)."""
    parts = [torch.logsumexp(x, -1) - (torch.softmax(x, -1) * x).sum(-1) for _, x in _chunks(logits)]
    return torch.cat(parts).view(logits.shape[:-1])


KL_ESTIMATORS = ("k1", "k2", "k3", "low_var_kl")


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from samples of the policy (Schulman's k1/k2/k3).

    k3 = exp(r) - r - 1 with r = ref_logp - logp: unbiased, always >= 0, low variance (the default). `k3` and
    `low_var_kl` are the same estimator, verl's `low_var_kl`: r clamped to [-20, 20] (exp overflow) and the
    estimate clamped to [-10, 10], so one pathological token cannot dominate the loss.
    """
    log_ratio = ref_logp - logp
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator in ("k3", "low_var_kl"):
        log_ratio = log_ratio.clamp(-20, 20)
        return (torch.exp(log_ratio) - log_ratio - 1).clamp(-10, 10)
    raise ValueError(f"KL estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float = 0.2, dual_clip: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's per-token clipped policy loss -> (loss [B, T], clipped [B, T] as 0/1).

    Dual clip (c > 1): for negative advantages the loss is also capped at -c * A, so a huge ratio on a bad
    action cannot produce an unbounded update.
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    loss = torch.maximum(unclipped, clipped)
    was_clipped = (clipped > unclipped).float()
    if dual_clip > 0:
        capped = torch.minimum(loss, -advantages * dual_clip)
        loss = torch.where(advantages < 0, capped, loss)
    return loss, was_clipped


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float = 0.5
) -> torch.Tensor:
    """PPO's clipped value loss per token: 0.5 * max((v - R)^2, (clip(v) - R)^2)."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logp: torch.Tensor | None = None,
    entropies: torch.Tensor | None = None,
    clip: float = 0.2,
    dual_clip: float = 0.0,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    entropy_coef: float = 0.0,
    agg: str = "token-mean",
    num_tokens: float | None = None,
    num_seqs: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The actor's loss: clipped surrogate + kl_coef * KL(policy || reference) - entropy_coef * entropy.

    The KL term is *added* (a penalty: minimizing the loss pulls the policy towards the reference; the
    reference implementation subtracts it for GRPO/REINFORCE). Advantages are [B] (one per trajectory) or [B, T].
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1).expand_as(logp)
    agg_kw = dict(mode=agg, num_tokens=num_tokens, num_seqs=num_seqs)
    pg, was_clipped = clipped_surrogate(logp, old_logp, advantages, clip, dual_clip)
    loss = aggregate(pg, mask, **agg_kw)
    stats = {"pg_loss": loss.detach(), "clip_frac": aggregate(was_clipped, mask, **agg_kw)}
    if ref_logp is not None:
        kl = aggregate(kl_penalty(logp, ref_logp, kl_estimator), mask, **agg_kw)
        loss = loss + kl_coef * kl
        stats["kl"] = kl.detach()
    if entropies is not None:
        ent = aggregate(entropies, mask, **agg_kw)
        loss = loss - entropy_coef * ent
        stats["entropy"] = ent.detach()
    return loss, stats
