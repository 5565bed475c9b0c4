"""Does it learn? The trainer's own `learn` step on a scripted task with a real tiny-random model, and the
invariance that gradient accumulation over micro-batches equals one big batch."""

import dataclasses

import pytest
import torch
from accelerate import Accelerator

from zerosearch.config import RLConfig
from zerosearch.generation.hf import HFGenerator
from zerosearch.models import tiny_random
from zerosearch.rl.policy import build_actor, make_optimizer
from zerosearch.rl.trainer import learn
from zerosearch.rollout.trajectory import Trajectory

PROMPT, TARGET, VOCAB = [3, 4, 5], 7, 16  # a 16-token vocabulary: the target starts at ~1/16 of the samples


def setup(rl: RLConfig, seed: int = 0):
    model, tokenizer = tiny_random(seed=seed, vocab_size=VOCAB)
    actor, reference = build_actor(model, rl)
    accelerator = Accelerator(cpu=True)
    wrapped, optimizer = accelerator.prepare(actor, make_optimizer(actor, rl))
    actor.eval()
    return accelerator, wrapped, actor, reference, optimizer, HFGenerator(actor.policy, tokenizer)


def scripted_episode(generator, n: int, seed: int, max_tokens: int = 4):
    """n samples of up to `max_tokens` tokens after a fixed prompt; reward = share of the target token."""
    outs = generator.generate([PROMPT] * n, max_new_tokens=max_tokens, temperature=1.0, seed=seed)
    trajectories = [
        Trajectory(
            question="",
            golden_answers=[],
            prompt_ids=list(PROMPT),
            response_ids=c.token_ids,
            loss_mask=[1] * len(c.token_ids),
        )
        for c in outs
    ]
    rewards = torch.tensor([sum(t == TARGET for t in c.token_ids) / max_tokens for c in outs])
    return trajectories, rewards


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_mean_reward_rises_on_a_target_token_task(algo):
    torch.manual_seed(0)
    rl = RLConfig(algo=algo, steps=30, samples_per_prompt=4, lr=3e-3, value_lr=3e-3, micro_batch=32, kl_coef=0.001)
    accelerator, wrapped, actor, reference, optimizer, generator = setup(rl)
    history = []
    for step in range(30):
        trajectories, rewards = scripted_episode(generator, 32, seed=step)
        learn(accelerator, wrapped, actor, reference, optimizer, trajectories, rewards, 0, rl)
        history.append(rewards.mean().item())
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    assert first < 0.2 and last > first + 0.3, history


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_gradient_accumulation_equals_one_big_batch(agg):
    """One SGD step (lr 1) over 16 trajectories, in 4 micro-batches of 4 or in one of 16: the same update."""
    rl = RLConfig(algo="grpo", samples_per_prompt=4, micro_batch=16, kl_coef=0.1, loss_agg=agg, max_grad_norm=0.0)
    deltas = []
    for micro in (16, 4):
        cfg = dataclasses.replace(rl, micro_batch=micro)
        accelerator, wrapped, actor, reference, _, generator = setup(cfg)
        before = [p.detach().clone() for p in actor.parameters()]
        optimizer = torch.optim.SGD([p for p in actor.parameters() if p.requires_grad], lr=1.0)
        trajectories, _ = scripted_episode(generator, 16, seed=1, max_tokens=6)  # varied lengths (eos)
        rewards = torch.linspace(0, 1, 16)[torch.randperm(16, generator=torch.Generator().manual_seed(0))]
        stats, _ = learn(accelerator, wrapped, actor, reference, optimizer, trajectories, rewards, 0, cfg)
        deltas.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(actor.parameters(), before)]))
    assert deltas[0].abs().max() > 1e-4  # the step did something
    assert torch.allclose(deltas[0], deltas[1], atol=1e-6, rtol=1e-4)


def test_lora_reference_is_the_base_model_and_checkpoints_round_trip(tmp_path):
    from zerosearch.rl import checkpoint
    from zerosearch.rl.policy import collate, logprobs_of, reference_logprobs

    rl = RLConfig(algo="grpo", samples_per_prompt=4, lr=1e-2, micro_batch=8, kl_coef=0.01, lora_r=4)
    accelerator, wrapped, actor, reference, optimizer, generator = setup(rl)
    assert reference is None  # no second copy: the reference is the base with adapters off
    trajectories, rewards = scripted_episode(generator, 8, seed=0)
    batch = collate(trajectories, 0)
    ref_before = reference_logprobs(actor, reference, batch)
    for _ in range(3):
        learn(accelerator, wrapped, actor, reference, optimizer, trajectories, torch.linspace(0, 1, 8), 0, rl)
    with torch.no_grad():
        policy_after = logprobs_of(actor, batch)[0]
    assert torch.allclose(reference_logprobs(actor, reference, batch), ref_before)  # the base did not move
    assert not torch.allclose(policy_after, ref_before, atol=1e-4)  # the adapters did
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    path = checkpoint.save(
        tmp_path, 3, actor, generator.tokenizer, optimizer, scheduler, {"step": 3, "data_pos": 24}, keep=1
    )
    assert (path / "adapter_model.safetensors").exists() and not (path / "model.safetensors").exists()

    _, _, fresh, _, fresh_opt, _ = setup(rl, seed=0)
    state = checkpoint.load(path, fresh, fresh_opt, torch.optim.lr_scheduler.LambdaLR(fresh_opt, lambda s: 1.0))
    assert state == {"step": 3, "data_pos": 24}
    with torch.no_grad():
        assert torch.allclose(logprobs_of(fresh, batch)[0], policy_after, atol=1e-6)
