"""Does it learn? The trainer's own `learn` step on a scripted task with a real tiny-random model, and the
invariance that gradient accumulation over micro-batches equals one big batch."""

import dataclasses
import gc
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from zerosearch.config import RLConfig
from zerosearch.generation.hf import HFGenerator
from zerosearch.models import tiny_random
from zerosearch.rl.policy import build_actor, collate, make_optimizer
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
    return [
        Trajectory(
            question="",
            golden_answers=[],
            prompt_ids=list(PROMPT),
            response_ids=c.token_ids,
            loss_mask=[1] * len(c.token_ids),
            reward=sum(t == TARGET for t in c.token_ids) / max_tokens,
        )
        for c in outs
    ]


def with_rewards(trajectories, rewards):
    return [dataclasses.replace(t, reward=float(r)) for t, r in zip(trajectories, rewards)]


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_mean_reward_rises_on_a_target_token_task(algo):
    torch.manual_seed(0)
    rl = RLConfig(algo=algo, steps=30, samples_per_prompt=4, lr=3e-3, value_lr=3e-3, micro_batch=32, kl_coef=0.001)
    accelerator, wrapped, actor, reference, optimizer, generator = setup(rl)
    history = []
    for step in range(30):
        trajectories = scripted_episode(generator, 32, seed=step)
        learn(accelerator, wrapped, reference, optimizer, collate(trajectories, 0), rl)
        history.append(sum(t.reward for t in trajectories) / len(trajectories))
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
        trajectories = scripted_episode(generator, 16, seed=1, max_tokens=6)  # varied lengths (eos)
        rewards = torch.linspace(0, 1, 16)[torch.randperm(16, generator=torch.Generator().manual_seed(0))]
        learn(accelerator, wrapped, reference, optimizer, collate(with_rewards(trajectories, rewards), 0), cfg)
        deltas.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(actor.parameters(), before)]))
    assert deltas[0].abs().max() > 1e-4  # the step did something
    assert torch.allclose(deltas[0], deltas[1], atol=1e-6, rtol=1e-4)


def test_lora_reference_is_the_base_model_and_checkpoints_round_trip(tmp_path):
    from zerosearch.rl import checkpoint
    from zerosearch.rl.policy import logprobs_of, reference_logprobs

    rl = RLConfig(algo="grpo", samples_per_prompt=4, lr=1e-2, micro_batch=8, kl_coef=0.01, lora_r=4)
    accelerator, wrapped, actor, reference, optimizer, generator = setup(rl)
    assert reference is None  # no second copy: the reference is the base with adapters off
    trajectories = with_rewards(scripted_episode(generator, 8, seed=0), torch.linspace(0, 1, 8))
    batch = collate(trajectories, 0)
    ref_before = reference_logprobs(actor, reference, batch)
    for _ in range(3):
        learn(accelerator, wrapped, reference, optimizer, collate(trajectories, 0), rl)
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


def test_offloaded_reference_and_checkpointing_change_memory_not_the_update():
    """Two Adam steps with a KL reference, kept in memory with the full backward pass, or kept on disk between steps
    with the activations recomputed: the same policy after (the second step's KL term needs the reference: the
    policy moved in the first)."""
    base = RLConfig(algo="grpo", samples_per_prompt=4, lr=1e-2, micro_batch=4, kl_coef=0.5)
    policies, kls = [], []
    for options in ({}, {"offload_reference": True, "gradient_checkpointing": True}):
        rl = dataclasses.replace(base, **options)
        accelerator, wrapped, actor, reference, optimizer, generator = setup(rl)
        trajectories = with_rewards(scripted_episode(generator, 8, seed=0), torch.linspace(0, 1, 8))
        for _ in range(2):
            stats = learn(accelerator, wrapped, reference, optimizer, collate(trajectories, 0), rl)
        policies.append(torch.cat([p.detach().flatten() for p in actor.policy.parameters()]))
        kls.append(stats["kl"])
        assert not actor.policy.training  # back in eval mode: generation keeps its KV cache
    assert kls[0] > 1e-6 and kls[1] == pytest.approx(kls[0], rel=1e-4)
    assert torch.allclose(policies[0], policies[1], atol=1e-6)
    # between steps the offloaded reference holds no weights, and its file goes with it
    assert all(p.numel() == 0 for p in reference.module.parameters())
    path = Path(reference.path)
    assert path.exists()
    del reference
    gc.collect()
    assert not path.exists()


def policy_delta(actor, before):
    return torch.cat([(p.detach() - b).flatten() for p, b in zip(actor.policy.parameters(), before)])


def sgd_step(rl: RLConfig, trajectories):
    """One update with plain SGD (lr 1), so that a gradient's size shows in the step; returns the policy's step."""
    accelerator, wrapped, actor, reference, _, _ = setup(rl)
    before = [p.detach().clone() for p in actor.policy.parameters()]
    optimizer = torch.optim.SGD(actor.parameters(), lr=1.0)
    learn(accelerator, wrapped, reference, optimizer, collate(trajectories, 0), rl)
    return policy_delta(actor, before)


def test_ppo_clips_the_policy_and_the_value_head_separately():
    """Rewards x1000 leave GAE's whitened advantages as they are but multiply the value loss's gradient by ~1e6:
    with separate clips the policy's step is the same; with one shared clip it would shrink ~1000-fold."""
    rl = RLConfig(algo="ppo", samples_per_prompt=4, micro_batch=8, kl_coef=0.0, max_grad_norm=1e-3)
    _, _, _, _, _, generator = setup(rl)
    trajectories = scripted_episode(generator, 8, seed=0)
    steps = [sgd_step(rl, with_rewards(trajectories, torch.linspace(0, 1, 8) * s)) for s in (1.0, 1000.0)]
    assert steps[0].norm() > 1e-4
    assert torch.allclose(steps[0], steps[1], atol=1e-7, rtol=1e-3)


def test_a_trajectory_whose_search_failed_trains_nothing():
    """Its reward and tokens change nothing: not in the loss, not in its group's baseline."""
    rl = RLConfig(algo="grpo", samples_per_prompt=4, micro_batch=8, kl_coef=0.01, max_grad_norm=0.0)
    _, _, _, _, _, generator = setup(rl)
    trajectories = with_rewards(scripted_episode(generator, 8, seed=0, max_tokens=5), torch.linspace(0, 1, 8))
    steps = []
    for reward, tokens in ((5.0, [9, 9, 9]), (-3.0, [1, 2, 3, 4, 5, 6])):
        failed = dataclasses.replace(
            trajectories[2], reward=reward, response_ids=tokens, loss_mask=[1] * len(tokens), stop_reason="search_error"
        )
        steps.append(sgd_step(rl, [*trajectories[:2], failed, *trajectories[3:]]))
    assert steps[0].abs().max() > 1e-4
    assert torch.allclose(steps[0], steps[1], atol=1e-6)
    assert collate([failed], 0).mask.sum() == 0


DDP_SCRIPT = """
import sys
import torch
from accelerate import Accelerator
from zerosearch.config import RLConfig
from zerosearch.models import tiny_random
from zerosearch.rl.policy import build_actor, collate
from zerosearch.rl.trainer import learn
from zerosearch.rollout.trajectory import Trajectory

g = torch.Generator().manual_seed(0)
lengths, rewards = [6] * 4 + [2] * 4, [0.0, 0.3, 0.6, 1.0, 1.0, 0.2, 0.5, 0.0]  # two groups, unequal token counts
trajectories = [
    Trajectory(question="", golden_answers=[], prompt_ids=[3, 4, 5], response_ids=torch.randint(0, 16, (n,),
    generator=g).tolist(), loss_mask=[1] * n, reward=r) for n, r in zip(lengths, rewards)
]
rl = RLConfig(samples_per_prompt=4, prompts_per_step=2, micro_batch=4, kl_coef=0.1, max_grad_norm=0.0)
actor, reference = build_actor(tiny_random(seed=0, vocab_size=16)[0], rl)
accelerator = Accelerator(cpu=True)
model, optimizer = accelerator.prepare(actor, torch.optim.SGD(actor.parameters(), lr=1.0))
actor.eval()
before = [p.detach().clone() for p in actor.parameters()]
rank, world = accelerator.process_index, accelerator.num_processes
rows = trajectories[rank * 8 // world : (rank + 1) * 8 // world]
learn(accelerator, model, reference, optimizer, collate(rows, 0), rl)
if accelerator.is_main_process:
    torch.save(torch.cat([(p.detach() - b).flatten() for p, b in zip(actor.parameters(), before)]), sys.argv[1])
"""


@pytest.mark.slow
def test_token_mean_over_two_processes_equals_one_process(tmp_path):
    """Each process holds one GRPO group, with 6 and 2 tokens per response: a mean of per-process token means would
    weight the short group's tokens 3x; normalizing by the global token count gives the one-process update."""
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "one.pt")], check=True, env=env, capture_output=True)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    done = subprocess.run([*launch, str(script), str(tmp_path / "two.pt")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one.abs().max() > 1e-4
    assert torch.allclose(one, two, atol=1e-6, rtol=1e-4)


def test_train_layers_updates_the_top_blocks_only():
    rl = RLConfig(samples_per_prompt=4, lr=1e-2, micro_batch=8, kl_coef=0.001, train_layers=1)
    accelerator, wrapped, actor, reference, optimizer, generator = setup(rl)
    before = {n: p.detach().clone() for n, p in actor.policy.named_parameters()}
    trajectories = with_rewards(scripted_episode(generator, 8, seed=0), [0, 1] * 4)
    learn(accelerator, wrapped, reference, optimizer, collate(trajectories, 0), rl)
    top = f"layers.{actor.policy.config.num_hidden_layers - 1}."
    changed = {n for n, p in actor.policy.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(top in n or n.endswith("model.norm.weight") for n in changed), changed
    assert any(top in n for n in changed)
