"""The trained model: a causal LM (full or LoRA) with an optional value head, batches of trajectories, and
per-token log-probs of the response.

Batches are laid out [left padding | prompt | response | right padding], so that every response starts at
the same column P and the forward pass computes logits for the response positions only (`logits_to_keep`).
The value head reads the last hidden state *detached*: the critic is a linear probe on the policy's features
and its loss does not reshape them (one model in memory, the policy gradient alone trains the backbone).
"""

from __future__ import annotations

import copy
import os
import tempfile
import weakref
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields

import torch
from torch import nn

from zerosearch.rl import algos

INPUTS = ("input_ids", "attention_mask", "position_ids")  # a Batch's [B, P+T] fields; the others: [B, T] or [B]


@dataclass
class Batch:
    """One training step's trajectories: the model inputs [B, P+T], the loss mask [B, T], the rewards [B], and the
    per-token tensors [B, T] that `learn` fills before the update (None until then, or when not needed).

    `valid` [B] marks the trajectories that train: one whose search failed for good (stop reason `search_error`)
    has an all-zero mask, so it adds nothing to the loss nor to the token counts, and the group algorithms leave it
    out of their baselines."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor
    valid: torch.Tensor
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    old_values: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.mask.shape[0]

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.input_ids.shape[1] - self.mask.shape[1] :]

    def to(self, device) -> Batch:
        return Batch(**{f.name: None if (x := getattr(self, f.name)) is None else x.to(device) for f in fields(self)})

    def rows(self, rows) -> Batch:
        """The batch's rows `rows`, with the columns that are padding in all of them trimmed."""
        attention = self.attention_mask[rows]
        P = attention.shape[1] - self.mask.shape[1]
        used = attention.any(0).nonzero().squeeze(-1)
        start, T = int(used.min()), max(int(used.max()) + 1 - P, 1)
        out = {}
        for f in fields(self):
            x = getattr(self, f.name)
            if x is not None:
                x = x[rows] if x.dim() == 1 else x[rows, start : P + T] if f.name in INPUTS else x[rows, :T]
            out[f.name] = x
        return Batch(**out)


def collate(trajectories, pad_id: int, device=None) -> Batch:
    """Trajectories -> a Batch laid out [left padding | prompt | response | right padding]; `rewards` are the
    trajectories' own (the reward that trains a trajectory is the one it records)."""
    P = max(len(t.prompt_ids) for t in trajectories)
    T = max(max(len(t.response_ids) for t in trajectories), 1)
    B = len(trajectories)
    input_ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attention = torch.zeros(B, P + T, dtype=torch.long)
    mask = torch.zeros(B, T)
    valid = torch.tensor([t.stop_reason != "search_error" for t in trajectories])
    for i, t in enumerate(trajectories):
        p, r = len(t.prompt_ids), len(t.response_ids)
        input_ids[i, P - p : P] = torch.tensor(t.prompt_ids)
        input_ids[i, P : P + r] = torch.tensor(t.response_ids, dtype=torch.long)
        attention[i, P - p : P + r] = 1
        if valid[i]:
            mask[i, :r] = torch.tensor(t.loss_mask, dtype=torch.float)
    batch = Batch(
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
        mask=mask,
        rewards=torch.tensor([float(t.reward) for t in trajectories]),
        valid=valid,
    )
    return batch if device is None else batch.to(device)


@torch.no_grad()
def per_token(fn, batch: Batch, micro_batch: int) -> list[torch.Tensor]:
    """Run `fn(sub_batch) -> tuple of [b, t] tensors` over micro-batches and reassemble [B, T] tensors."""
    B, T = batch.mask.shape
    outs = None
    for rows in torch.arange(B).split(micro_batch):
        results = fn(batch.rows(rows))
        outs = outs or [torch.zeros(B, T, device=batch.mask.device) for _ in results]
        for out, r in zip(outs, results):
            out[rows, : r.shape[1]] = r.float()
    return outs


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


def logprobs_of(model, batch: Batch, with_entropy: bool = False, entropy_grad: bool = False):
    """(log-probs [B, T], entropy [B, T] or None, values [B, T] or None) of the batch's response tokens.

    The entropy is differentiable only when `entropy_grad` (an entropy bonus is on); otherwise it is a metric
    (and the collapse guard's signal) and builds no graph.
    """
    T = batch.mask.shape[1]
    logits, values = model(batch.input_ids, batch.attention_mask, batch.position_ids, T)
    logp = algos.token_logprobs(logits, batch.response_ids)
    ent = algos.entropy(logits if entropy_grad else logits.detach()) if with_entropy else None
    return logp, ent, values


class OffloadedReference:
    """The frozen reference of full fine-tuning, kept in a safetensors file between steps: `with reference.loaded()
    as lm` reads its weights back for a step's reference log-probs and frees them after, so that the update's peak
    holds one model, not two (verl's `ref.param_offload`, with the disk as the far side). The module keeps its
    structure and buffers; only its parameters' storage comes and goes."""

    def __init__(self, model: nn.Module):
        from safetensors.torch import save_file

        handle, self.path = tempfile.mkstemp(prefix="zerosearch-reference-", suffix=".safetensors")
        os.close(handle)
        weakref.finalize(self, os.unlink, self.path)
        # named_parameters names a tied weight once: it is saved and restored once, and stays tied
        save_file({name: p.detach().contiguous() for name, p in model.named_parameters()}, self.path)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.device = next(model.parameters()).device
        self._free()

    def _free(self) -> None:
        for p in self.module.parameters():
            p.data = p.data.new_empty(0)

    @contextmanager
    def loaded(self):
        from safetensors.torch import load_file

        tensors = load_file(self.path, device=str(self.device))
        for name, p in self.module.named_parameters():
            p.data = tensors.pop(name)
        try:
            yield self.module
        finally:
            self._free()


def loaded(reference):
    """A context yielding the reference module ready to run (read back from disk if it is offloaded)."""
    return reference.loaded() if isinstance(reference, OffloadedReference) else nullcontext(reference)


@torch.no_grad()
def reference_logprobs(actor: ActorCritic, reference: nn.Module | None, batch: Batch) -> torch.Tensor:
    """Log-probs under the frozen reference: the base model with adapters off (LoRA) or a frozen copy (full)."""
    args = (batch.input_ids, batch.attention_mask, batch.position_ids, batch.mask.shape[1])
    if reference is None:
        with actor.policy.disable_adapter():
            return algos.token_logprobs(response_logits(actor.policy, *args)[0], batch.response_ids)
    return algos.token_logprobs(response_logits(reference, *args)[0], batch.response_ids)


def build_actor(model, rl_cfg) -> tuple[ActorCritic, nn.Module | OffloadedReference | None]:
    """(actor, reference): LoRA adapters via PEFT (reference = adapters disabled, None here) or full fine-tuning,
    of every block or the top `train_layers` (reference = a frozen copy, only when the KL term is on; on disk
    between steps with `offload_reference`)."""
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
        policy, reference = model, None
        if rl_cfg.kl_coef > 0:
            reference = (
                OffloadedReference(model)
                if rl_cfg.offload_reference
                else copy.deepcopy(model).eval().requires_grad_(False)
            )
        if rl_cfg.train_layers:
            from zerosearch.models import freeze_below

            freeze_below(policy, rl_cfg.train_layers, "rl.train_layers")
    return ActorCritic(policy, with_value_head=rl_cfg.algo == "ppo"), reference


def make_optimizer(actor: ActorCritic, rl_cfg) -> torch.optim.Optimizer:
    """AdamW over the trainable policy weights (all, or the LoRA adapters) and, for PPO, the value head at its own
    lr."""
    groups = [{"params": [p for p in actor.policy.parameters() if p.requires_grad], "lr": rl_cfg.lr}]
    if actor.value_head is not None:
        groups.append({"params": list(actor.value_head.parameters()), "lr": rl_cfg.value_lr})
    return adamw(groups)


@contextmanager
def checkpointed(policy: nn.Module, enabled: bool = True):
    """Inside the block, the policy recomputes each block's activations in the backward pass instead of keeping
    them (less memory, about a third more compute in the update). transformers checkpoints only in training mode,
    and in training mode turns the KV cache off, so the policy goes back to eval mode (generation) after it; no layer
    here behaves otherwise in training mode."""
    if not enabled:
        yield
        return
    # transformers 5.x renamed gradient checkpointing to activation checkpointing (the old names warn)
    renamed = hasattr(policy, "activation_checkpointing_enable")
    kwargs = {"use_reentrant": False}
    if renamed:
        policy.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    policy.train()
    try:
        yield
    finally:
        policy.activation_checkpointing_disable() if renamed else policy.gradient_checkpointing_disable()
        policy.eval()


def adamw(params, **kwargs) -> torch.optim.AdamW:
    """AdamW without weight decay, fused where torch has the kernel for the weights' device (CPU, CUDA). The default
    (foreach) implementation allocates a temporary as large as all trained weights at every step (the denominator
    sqrt(v) + eps: 0.54 GB for a 135M model under full fine-tuning); the fused kernel updates each tensor in one
    pass, with the same math (a CPU step's peak: 3.93 -> 3.82 GiB, docs/performance.md)."""
    groups = list(params)
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = bool(tensors) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in tensors)
    return torch.optim.AdamW(groups, weight_decay=0.0, fused=fused or None, **kwargs)
