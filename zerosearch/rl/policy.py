"""The trained model: a causal LM (full or LoRA) with an optional value head, batches of trajectories, and
per-token log-probs of the response.

Batches are laid out [left padding | prompt | response | right padding], so that every response starts at
the same column P and the forward pass computes logits for the response positions only (`logits_to_keep`).
The value head reads the last hidden state *detached*: the critic is a linear probe on the policy's features
and its loss does not reshape them (one model in memory, the policy gradient alone trains the backbone).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from zerosearch.rl import algos


def collate(trajectories, pad_id: int, device=None) -> dict:
    """Trajectories -> padded tensors: input_ids/attention_mask/position_ids [B, P+T]; response_ids/mask [B, T]."""
    P = max(len(t.prompt_ids) for t in trajectories)
    T = max(max(len(t.response_ids) for t in trajectories), 1)
    B = len(trajectories)
    input_ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attention = torch.zeros(B, P + T, dtype=torch.long)
    mask = torch.zeros(B, T)
    for i, t in enumerate(trajectories):
        p, r = len(t.prompt_ids), len(t.response_ids)
        input_ids[i, P - p : P] = torch.tensor(t.prompt_ids)
        input_ids[i, P : P + r] = torch.tensor(t.response_ids, dtype=torch.long)
        attention[i, P - p : P + r] = 1
        mask[i, :r] = torch.tensor(t.loss_mask, dtype=torch.float)
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    batch = dict(
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=position_ids,
        response_ids=input_ids[:, P:],
        mask=mask,
    )
    return {k: v.to(device) for k, v in batch.items()} if device is not None else batch


def select(batch: dict, rows, *per_token: torch.Tensor | None):
    """Rows of a batch with all-padding columns trimmed; `per_token` [B, T] tensors are cut to match."""
    attention = batch["attention_mask"][rows]
    P = attention.shape[1] - batch["mask"].shape[1]
    used = attention.any(0).nonzero().squeeze(-1)
    start, T = int(used.min()), max(int(used.max()) + 1 - P, 1)
    sub = {k: batch[k][rows, start : P + T] for k in ("input_ids", "attention_mask", "position_ids")}
    sub["response_ids"], sub["mask"] = batch["response_ids"][rows, :T], batch["mask"][rows, :T]
    return sub, [None if x is None else x[rows, :T] for x in per_token]


class ActorCritic(nn.Module):
    """The policy LM plus, for PPO, a linear value head. `forward` returns response logits and values."""

    def __init__(self, policy: nn.Module, with_value_head: bool):
        super().__init__()
        self.policy = policy
        hidden = policy.config.get_text_config(decoder=True).hidden_size
        self.value_head = nn.Linear(hidden, 1) if with_value_head else None
        if self.value_head is not None:
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, position_ids, n_response: int):
        logits, hidden = response_logits(
            self.policy, input_ids, attention_mask, position_ids, n_response, self.value_head is not None
        )
        values = None if hidden is None else self.value_head(hidden.detach().float()).squeeze(-1)
        return logits, values


def response_logits(lm, input_ids, attention_mask, position_ids, n_response: int, want_hidden: bool = False):
    """Logits predicting each response token [B, T, V] (and the hidden states at those positions)."""
    out = lm(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=n_response + 1,
        output_hidden_states=want_hidden,
        use_cache=False,
    )
    hidden = out.hidden_states[-1][:, -n_response - 1 : -1] if want_hidden else None
    return out.logits[:, :-1], hidden


def logprobs_of(model, batch: dict, with_entropy: bool = False, entropy_grad: bool = False):
    """(log-probs [B, T], entropy [B, T] or None, values [B, T] or None) of the batch's response tokens.

    The entropy is differentiable only when `entropy_grad` (an entropy bonus is on); otherwise it is a metric
    (and the collapse guard's signal) and builds no graph.
    """
    T = batch["mask"].shape[1]
    logits, values = model(batch["input_ids"], batch["attention_mask"], batch["position_ids"], T)
    logp = algos.token_logprobs(logits, batch["response_ids"])
    ent = algos.entropy(logits if entropy_grad else logits.detach()) if with_entropy else None
    return logp, ent, values


@torch.no_grad()
def reference_logprobs(actor: ActorCritic, reference: nn.Module | None, batch: dict) -> torch.Tensor:
    """Log-probs under the frozen reference: the base model with adapters off (LoRA) or a frozen copy (full)."""
    T = batch["mask"].shape[1]
    args = (batch["input_ids"], batch["attention_mask"], batch["position_ids"], T)
    if reference is None:
        with actor.policy.disable_adapter():
            return algos.token_logprobs(response_logits(actor.policy, *args)[0], batch["response_ids"])
    return algos.token_logprobs(response_logits(reference, *args)[0], batch["response_ids"])


def build_actor(model, rl_cfg) -> tuple[ActorCritic, nn.Module | None]:
    """(actor, reference): LoRA adapters via PEFT (reference = adapters disabled, None here) or full fine-tuning
    (reference = a frozen copy, only when the KL term is on)."""
    if rl_cfg.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=rl_cfg.lora_r,
            lora_alpha=rl_cfg.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        policy, reference = get_peft_model(model, lora), None
    else:
        policy = model
        reference = copy.deepcopy(model).eval().requires_grad_(False) if rl_cfg.kl_coef > 0 else None
    return ActorCritic(policy, with_value_head=rl_cfg.algo == "ppo"), reference


def make_optimizer(actor: ActorCritic, rl_cfg) -> torch.optim.Optimizer:
    """AdamW over the trainable policy weights (all, or the LoRA adapters) and, for PPO, the value head at its own lr."""
    groups = [{"params": [p for p in actor.policy.parameters() if p.requires_grad], "lr": rl_cfg.lr}]
    if actor.value_head is not None:
        groups.append({"params": list(actor.value_head.parameters()), "lr": rl_cfg.value_lr})
    return torch.optim.AdamW(groups, weight_decay=0.0)
