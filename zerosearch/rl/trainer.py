"""The RL training loop of ZeroSearch, top to bottom. The math lives in algos.py; the model in policy.py.

One step:
  1. the next `prompts_per_step` questions of a seeded shuffle (the position is checkpointed);
  2. `samples_per_prompt` rollouts per question with the current policy, against the training engine (a separate
     simulator model by default), each search noisy with the curriculum's probability for this step (Eq. 1);
  3. rewards: F1 of the extracted answer (the paper's reward; em / cover_em as options);
  4. log-probs of the response tokens under the reference (for the KL penalty), and under the policy before the
     update when the update is off-policy (several epochs or mini-batches); values for PPO;
  5. advantages: GRPO, RLOO, REINFORCE++ or PPO-GAE;
  6. `epochs` passes of clipped updates over mini-batches, each accumulated over micro-batches, one optimizer step
     per mini-batch;
  7. one line of metrics.jsonl, the collapse guard, a checkpoint.

Scale-out: under `accelerate launch --multi_gpu` (GPUs) or `torchrun --nproc_per_node N $(which zerosearch) train`
(CPUs, gloo) each process rolls out its share of the step's questions and DDP averages gradients (the GRPO groups
stay whole; REINFORCE++ whitens per process). Generation on an OpenAI-compatible server
(`model.backend=openai`, vLLM/SGLang) works, but the server's weights are NOT updated as the local model trains:
weight sync is not implemented, so after step 1 the rollouts come from the initial policy (off-policy; the
importance ratios use local log-probs). Use it for the first steps of a run or with a server you reload yourself
from the checkpoints.

Departure: no dropout anywhere (the model stays in eval mode), so that the rollout's, the old and the new
log-probs are the same function of the weights.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import yaml

from zerosearch.config import TrainConfig, to_dict
from zerosearch.curriculum import schedule
from zerosearch.errors import UserError
from zerosearch.rewards import cover_exact_match, exact_match, f1_score, format_reward
from zerosearch.rl import algos, checkpoint
from zerosearch.rl.monitor import CollapseGuard, MetricsLogger
from zerosearch.rl.policy import build_actor, collate, logprobs_of, make_optimizer, reference_logprobs, select

REWARDS = {"f1": f1_score, "em": exact_match, "cover_em": cover_exact_match}


class TrainingCollapsed(UserError):
    """The collapse guard stopped the run."""


def take_questions(questions: list, pos: int, n: int, seed: int) -> list:
    """The next n questions from stream position `pos` of an endless sequence of seeded per-epoch shuffles."""
    out = []
    while len(out) < n:
        epoch, i = divmod(pos, len(questions))
        order = np.random.default_rng([seed, epoch]).permutation(len(questions))
        chunk = order[i : i + n - len(out)]
        out += [questions[j] for j in chunk]
        pos += len(chunk)
    return out


def rewards_of(trajectories, rl) -> torch.Tensor:
    return torch.tensor(
        [
            REWARDS[rl.reward](t.answer, t.golden_answers) + format_reward(t.response_text, rl.format_reward)
            for t in trajectories
        ],
        dtype=torch.float,
    )


def advantages_of(rl, rewards: torch.Tensor, mask: torch.Tensor, values: torch.Tensor | None):
    """(advantages [B, T], returns [B, T] for PPO's value loss or None)."""
    if rl.algo == "ppo":
        return algos.gae_advantages(rewards, values, mask, rl.gamma, rl.lam)
    if rl.algo == "reinforce_pp":
        return algos.reinforce_pp_advantages(rewards, mask, rl.gamma), None
    adv = (
        algos.grpo_advantages(rewards, rl.samples_per_prompt, rl.norm_adv_by_std)
        if rl.algo == "grpo"
        else algos.rloo_advantages(rewards, rl.samples_per_prompt)
    )
    return adv.unsqueeze(-1).expand_as(mask).contiguous(), None


@torch.no_grad()
def per_token(fn, batch: dict, micro_batch: int) -> list[torch.Tensor]:
    """Run `fn(sub_batch) -> tuple of [b, t] tensors` over micro-batches and reassemble [B, T] tensors."""
    B, T = batch["mask"].shape
    outs = None
    for rows in torch.arange(B).split(micro_batch):
        sub, _ = select(batch, rows)
        results = fn(sub)
        outs = outs or [torch.zeros(B, T, device=batch["mask"].device) for _ in results]
        for out, r in zip(outs, results):
            out[rows, : r.shape[1]] = r.float()
    return outs


def update(accelerator, model, optimizer, batch, advantages, old_logp, ref_logp, returns, old_values, rl) -> dict:
    """Epochs of clipped updates over mini-batches, each accumulated over micro-batches. Returns mean statistics.

    A micro-batch's loss is normalized by its whole mini-batch's token/sequence count, so the accumulated gradient
    equals the gradient of one big batch. `old_logp` None = on-policy: the ratio's denominator is the current
    log-prob, detached (saves a forward pass; the value is the same).
    """
    B = batch["mask"].shape[0]
    mini = rl.mini_batch or B
    totals: dict[str, float] = {}
    n_steps = 0
    for _ in range(rl.epochs):
        order = torch.randperm(B) if (rl.epochs > 1 or mini < B) else torch.arange(B)
        for rows in order.split(mini):
            norm = dict(num_tokens=batch["mask"][rows].sum().clamp(min=1), num_seqs=len(rows))
            micros = rows.split(rl.micro_batch)
            stats: dict[str, float] = {}
            for k, m in enumerate(micros):
                sub, (adv, old, ref, ret, old_v) = select(batch, m, advantages, old_logp, ref_logp, returns, old_values)
                with nullcontext() if k == len(micros) - 1 else accelerator.no_sync(model), accelerator.autocast():
                    logp, ent, values = logprobs_of(model, sub, with_entropy=True, entropy_grad=rl.entropy_coef > 0)
                    loss, s = algos.policy_loss(
                        logp,
                        logp.detach() if old is None else old,
                        adv,
                        sub["mask"],
                        ref_logp=ref,
                        entropies=ent,
                        clip=rl.clip,
                        dual_clip=rl.dual_clip,
                        kl_coef=rl.kl_coef,
                        kl_estimator=rl.kl_estimator,
                        entropy_coef=rl.entropy_coef,
                        agg=rl.loss_agg,
                        **norm,
                    )
                    if values is not None:
                        s["value_loss"] = algos.aggregate(
                            algos.value_loss(values, old_v, ret, rl.clip), sub["mask"], rl.loss_agg, **norm
                        )
                        loss = loss + s["value_loss"]
                accelerator.backward(loss)
                for name, v in {**s, "loss": loss}.items():
                    stats[name] = stats.get(name, 0.0) + v.item()
            grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), rl.max_grad_norm or math.inf))
            if math.isfinite(grad_norm) and math.isfinite(stats["loss"]):
                optimizer.step()  # a non-finite step is skipped here and reported to the collapse guard
            optimizer.zero_grad(set_to_none=True)
            stats["grad_norm"] = grad_norm
            for name, v in stats.items():
                totals[name] = totals.get(name, 0.0) + v
            n_steps += 1
    return {name: v / n_steps for name, v in totals.items()}


def learn(accelerator, model, actor, reference, optimizer, trajectories, rewards: torch.Tensor, pad_id: int, rl):
    """Steps 4-6 for scored trajectories: reference/old log-probs and values, advantages, clipped updates.
    `model` is the (possibly DDP-wrapped) trained module, `actor` the same unwrapped. Returns (statistics, batch)."""
    batch = collate(trajectories, pad_id, accelerator.device)
    rewards = rewards.to(accelerator.device)
    on_policy = rl.epochs == 1 and (rl.mini_batch == 0 or rl.mini_batch >= len(trajectories))

    def old_pass(b: dict) -> tuple:
        logp, _, values = logprobs_of(actor, b)
        return (logp,) if values is None else (logp, values)

    with accelerator.autocast():
        ref_logp = (
            per_token(lambda b: (reference_logprobs(actor, reference, b),), batch, rl.micro_batch)[0]
            if rl.kl_coef > 0
            else None
        )
        old_logp = old_values = None
        if not on_policy or rl.algo == "ppo":
            old = per_token(old_pass, batch, rl.micro_batch)
            old_logp = None if on_policy else old[0]
            old_values = old[-1] if rl.algo == "ppo" else None
    advantages, returns = advantages_of(rl, rewards, batch["mask"], old_values)
    return update(accelerator, model, optimizer, batch, advantages, old_logp, ref_logp, returns, old_values, rl), batch


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Run (or resume) RL training; returns the run directory."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from zerosearch.data import load_questions
    from zerosearch.engines import make_engine
    from zerosearch.generation import make_generator
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model
    from zerosearch.rollout import run_rollouts, write_jsonl

    rl, out = cfg.rl, Path(cfg.out)
    if not resume and checkpoint.checkpoints(out):
        raise UserError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    precision = rl.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # cpu=True on a machine without CUDA: several CPU processes (torchrun) then form a gloo group instead of each
    # believing it is alone.
    accelerator = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())
    set_seed(cfg.seed)
    main = accelerator.is_main_process

    # --- model, optimizer, generation, engine, data ---------------------------------------------------------
    model, tokenizer = load_model(cfg.model.spec, dtype=cfg.model.dtype, device=str(accelerator.device))
    actor, reference = build_actor(model, rl)
    optimizer = make_optimizer(actor, rl)
    state = {"step": 0, "data_pos": 0, "rollbacks": 0, "lr_scale": 1.0}
    # Linear warm-up, then constant; `lr_scale` drops at each rollback of the collapse guard.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: state["lr_scale"] * min(1.0, (s + 1) / (rl.warmup_steps + 1))
    )
    model, optimizer = accelerator.prepare(actor, optimizer)  # the scheduler stays ours: one step per training step
    actor.eval()

    if cfg.model.backend == "openai":
        generator = make_generator(cfg.model)
        accelerator.print(
            "warning: rollouts come from the OpenAI-compatible server, whose weights are not synced with training"
        )
    else:
        generator = HFGenerator(actor.policy, tokenizer)
    engine = make_engine(cfg.engine, generator=generator if cfg.simulator_shares_policy else None)
    questions = load_questions(cfg.data, seed=cfg.seed)
    if not questions:
        raise UserError(f"no training questions in {cfg.data}")
    noise = schedule(
        cfg.curriculum.schedule, rl.steps, cfg.curriculum.p_start, cfg.curriculum.p_end, cfg.curriculum.base
    )
    guard = CollapseGuard(cfg.collapse_window, cfg.collapse_ratio, cfg.min_entropy)

    def restore(path: Path, **overrides) -> None:
        loaded = checkpoint.load(path, actor, optimizer, scheduler)
        guard.load_state_dict(loaded.pop("guard"))
        state.update(loaded, **overrides)
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):  # the lr at the current scale
            group["lr"] = base * scheduler.lr_lambdas[0](scheduler.last_epoch)

    if resume:
        if not checkpoint.checkpoints(out):
            raise UserError(f"--resume: no checkpoint in {out / 'checkpoints'}")
        restore(checkpoint.checkpoints(out)[-1])
        accelerator.print(f"resumed from step {state['step']} of {out}")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    logger = (
        MetricsLogger(out, to_dict(cfg), cfg.log_tensorboard, cfg.log_wandb, resume_step=state["step"])
        if main
        else None
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, disable=not (cfg.progress and main))
    task = progress.add_task("training", total=rl.steps, completed=state["step"])

    with progress:
        while state["step"] < rl.steps:
            step = state["step"] + 1
            t_start = time.perf_counter()

            # 1-2. questions and rollouts (each process its share; the curriculum's p for this step)
            examples = take_questions(questions, state["data_pos"], rl.prompts_per_step, cfg.seed)[rank::world]
            p_noisy = noise[step - 1]
            engine_s0 = engine.meter.seconds
            trajectories = run_rollouts(
                generator,
                engine,
                examples,
                cfg.rollout,
                p_noisy=p_noisy,
                seed=cfg.seed * 1_000_003 + step * 1009 + rank,
                n=rl.samples_per_prompt,
                k=cfg.engine.k,
            )
            rollout_s = time.perf_counter() - t_start

            # 3-6. rewards, then learn from them
            t_update = time.perf_counter()
            rewards = rewards_of(trajectories, rl)
            stats, batch = learn(
                accelerator, model, actor, reference, optimizer, trajectories, rewards, tokenizer.pad_token_id, rl
            )
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            update_s = time.perf_counter() - t_update

            # 7. metrics (averaged over processes), collapse guard, checkpoint
            n_policy = batch["mask"].sum().item()
            searches = [s for t in trajectories for s in t.searches]
            local = {
                "reward": rewards.mean().item(),
                "f1": float(np.mean([f1_score(t.answer, t.golden_answers) for t in trajectories])),
                "em": float(np.mean([t.em for t in trajectories])),
                "answer_rate": float(np.mean([t.answer is not None for t in trajectories])),
                "searches": len(searches) / len(trajectories),
                "noisy_frac": sum(s.mode == "noisy" for s in searches) / max(len(searches), 1),
                "response_len": float(np.mean([len(t.response_ids) for t in trajectories])),
                "policy_tokens": n_policy / len(trajectories),
                **stats,
                "tokens_per_s": n_policy / max(rollout_s, 1e-9),
                "rollout_s": rollout_s,
                "engine_s": engine.meter.seconds - engine_s0,
                "update_s": update_s,
            }
            values = accelerator.reduce(torch.tensor(list(local.values()), device=accelerator.device), "mean").tolist()
            metrics = {
                "step": step,
                "p_noisy": p_noisy,
                "lr": lr,
                **dict(zip(local, values)),
                "step_s": time.perf_counter() - t_start,
            }

            problem = guard.check(metrics) if cfg.on_collapse != "off" else None
            if problem:
                saved = checkpoint.checkpoints(out)
                if cfg.on_collapse != "rollback" or not saved or state["rollbacks"] >= cfg.max_rollbacks:
                    raise TrainingCollapsed(
                        f"step {step}: {problem}; stopped (on_collapse={cfg.on_collapse}, "
                        f"rollbacks used {state['rollbacks']}/{cfg.max_rollbacks}). Last checkpoint: {saved[-1] if saved else 'none'}"
                    )
                restore(
                    saved[-1], rollbacks=state["rollbacks"] + 1, lr_scale=state["lr_scale"] * cfg.rollback_lr_factor
                )
                accelerator.print(
                    f"step {step}: {problem}; rolled back to step {state['step']} with lr x{state['lr_scale']:g}"
                )
                if logger:
                    logger.truncate_after(state["step"])
                progress.update(task, completed=state["step"])
                continue

            state.update(step=step, data_pos=state["data_pos"] + rl.prompts_per_step)
            if logger:
                logger.log(metrics)
            if cfg.save_trajectories:  # every process its own share
                write_jsonl(
                    trajectories, out / "trajectories" / f"step-{step:06d}{f'-rank{rank}' if world > 1 else ''}.jsonl"
                )
            if main and (step % cfg.save_every == 0 or step == rl.steps):
                checkpoint.save(
                    out,
                    step,
                    actor,
                    tokenizer,
                    optimizer,
                    scheduler,
                    {**state, "guard": guard.state_dict()},
                    cfg.keep_checkpoints,
                )
            accelerator.wait_for_everyone()
            progress.update(
                task, completed=step, description=f"reward {metrics['reward']:.3f} kl {metrics.get('kl', 0):.4f}"
            )
    if logger:
        logger.close()
    return out
