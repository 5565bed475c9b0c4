"""The RL algorithms as pure tensor functions: advantages, the clipped surrogate, KL, entropy, aggregation.

Shapes: `B` trajectories, `T` response positions. `mask` is the loss mask (1 = a token the policy generated,
0 = an environment token or padding); every per-token quantity is aggregated through `aggregate`, the one
place that knows the loss-aggregation modes.
"""

from __future__ import annotations

import torch

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
# Outcome rewards: one scalar per trajectory. Group algorithms see rewards of n samples per prompt,
# grouped consecutively ([p0 s0, p0 s1, ..., p1 s0, ...]).


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, norm_by_std: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """[B] -> [B]: reward minus its group's mean, divided by the group's (unbiased) std when `norm_by_std`."""
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(-1, keepdim=True)
    if norm_by_std:
        centred = centred / (groups.std(-1, keepdim=True) + eps)
    return centred.reshape(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[B] -> [B]: reward minus the mean of the *other* samples of its group (leave-one-out baseline)."""
    groups = rewards.view(-1, group_size)
    others = (groups.sum(-1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).reshape(-1)


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


# --- losses --------------------------------------------------------------------------------------------


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(label) per position, without materializing a full log-softmax copy of the logits."""
    logits = logits.float() / temperature
    return torch.gather(logits, -1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution per position."""
    logits = logits.float()
    return torch.logsumexp(logits, -1) - (torch.softmax(logits, -1) * logits).sum(-1)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from samples of the policy (Schulman's k1/k2/k3).

    k3 = exp(r) - r - 1 with r = ref_logp - logp: unbiased, always >= 0, low variance (the default).
    """
    log_ratio = ref_logp - logp
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        log_ratio = log_ratio.clamp(-20, 20)  # exp overflow guard on pathological tokens
        return torch.exp(log_ratio) - log_ratio - 1
    raise ValueError(f"KL estimator must be k1, k2 or k3, got {estimator!r}")


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
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float = 0.2
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
