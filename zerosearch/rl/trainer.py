"""The RL training loop of ZeroSearch, top to bottom. The math and the algorithm registry live in algos.py; the
model and the training batch in policy.py. See docs/training.md.

One step:
  1. the next `prompts_per_step` questions of a seeded shuffle (the position is checkpointed);
  2. `samples_per_prompt` rollouts per question with the current policy, against the training engine (a separate
     simulator model by default), each search noisy with the curriculum's probability for this step (Eq. 1);
  3. rewards: each trajectory records the reward that trains it (`rewards.score`: F1 of the extracted answer, the
     paper's reward; em / cover_em as options); a trajectory whose search failed for good trains nothing;
  4. log-probs of the response tokens under the reference (for the KL penalty), and under the policy before the
     update when the update is off-policy (several epochs or mini-batches); values for PPO;
  5. advantages, by the registered algorithm (GRPO, RLOO, REINFORCE, REINFORCE++, PPO-GAE);
  6. `epochs` passes of clipped updates over mini-batches, each accumulated over micro-batches, one optimizer step
     per mini-batch;
  7. one line of metrics.jsonl, the collapse guard, a checkpoint.

Scale-out: under `accelerate launch --multi_gpu` (GPUs) or `torchrun --nproc_per_node N $(which zerosearch) train`
(CPUs, gloo) each process rolls out its share of the questions (GRPO groups stay whole) and DDP averages gradients.
Generation is the trained model's own (on-policy); vLLM generation with weight sync: `zerosearch train --trainer trl`.

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
from zerosearch.memory import release_freed_memory
from zerosearch.rl import algos, checkpoint
from zerosearch.rl.monitor import CollapseGuard, MetricsLogger, rollout_metrics
from zerosearch.rl.policy import (
    Batch,
    build_actor,
    checkpointed,
    collate,
    loaded,
    logprobs_of,
    make_optimizer,
    per_token,
    reference_logprobs,
)


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


def update(accelerator, model, optimizer, batch: Batch, rl) -> dict:
    """Epochs of clipped updates over mini-batches, each accumulated over micro-batches. Returns mean statistics.

    A micro-batch's loss is normalized by its whole mini-batch's token/sequence count over all processes (as verl's
    `agg_loss` with its dp size), so the accumulated, process-averaged gradient equals that of one big batch.
    `batch.old_logp` None = on-policy: the ratio's denominator is the current log-prob, detached.
    """
    actor, world = accelerator.unwrap_model(model), accelerator.num_processes
    B = len(batch)
    mini = rl.mini_batch // world if rl.mini_batch else B
    parts = [[p for p in actor.policy.parameters() if p.requires_grad]]
    parts += [list(actor.value_head.parameters())] if actor.value_head is not None else []
    totals: dict[str, float] = {}
    n_steps = 0
    for _ in range(rl.epochs):
        order = torch.randperm(B) if (rl.epochs > 1 or mini < B) else torch.arange(B)
        for rows in order.split(mini):
            counts = torch.stack([batch.mask[rows].sum(), batch.valid[rows].sum().float()])
            n_tokens, n_seqs = (accelerator.reduce(counts, "sum").clamp(min=1) / world).tolist()
            norm = dict(num_tokens=n_tokens, num_seqs=n_seqs)
            micros = rows.split(rl.micro_batch)
            stats: dict[str, float] = {}
            for k, m in enumerate(micros):
                sub = batch.rows(m)
                with nullcontext() if k == len(micros) - 1 else accelerator.no_sync(model), accelerator.autocast():
                    logp, ent, values = logprobs_of(model, sub, with_entropy=True, entropy_grad=rl.entropy_coef > 0)
                    loss, s = algos.policy_loss(
                        logp,
                        logp.detach() if sub.old_logp is None else sub.old_logp,
                        sub.advantages,
                        sub.mask,
                        ref_logp=sub.ref_logp,
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
                        v_loss = algos.value_loss(values, sub.old_values, sub.returns, rl.value_clip)
                        s["value_loss"] = algos.aggregate(v_loss, sub.mask, rl.loss_agg, **norm)
                        loss = loss + s["value_loss"]
                accelerator.backward(loss)
                for name, v in {**s, "loss": loss}.items():
                    stats[name] = stats.get(name, 0.0) + v.item()
            # The policy and the value head are clipped separately (as verl's actor and critic): the critic's
            # large early gradients must not shrink the policy's step.
            accelerator.unscale_gradients()
            norms = [float(torch.nn.utils.clip_grad_norm_(p, rl.max_grad_norm or math.inf)) for p in parts]
            if all(map(math.isfinite, [*norms, stats["loss"]])):
                optimizer.step()  # a non-finite step is skipped here and reported to the collapse guard
            optimizer.zero_grad(set_to_none=True)
            stats.update(zip(("grad_norm", "value_grad_norm"), norms))
            for name, v in stats.items():
                totals[name] = totals.get(name, 0.0) + v
            n_steps += 1
    return {name: v / n_steps for name, v in totals.items()}


def learn(accelerator, model, reference, optimizer, batch: Batch, rl) -> dict:
    """Steps 4-6 for a collated batch: fill in the reference/old log-probs, the values and the advantages, then
    update. `model` is the (possibly DDP-wrapped) trained module. Returns the statistics, with the phase times."""
    actor, algo = accelerator.unwrap_model(model), algos.get_algo(rl.algo)
    start = time.perf_counter()
    # The rollout's freed buffers (KV caches, logits) would otherwise stay in the heap under the update's peak: 0.58
    # GiB of a CPU step (docs/performance.md)
    release_freed_memory()
    off_policy = rl.epochs > 1 or 0 < rl.mini_batch // accelerator.num_processes < len(batch)  # as in update()

    def old_pass(b: Batch) -> tuple:
        logp, _, values = logprobs_of(actor, b)
        return (logp,) if values is None else (logp, values)

    with accelerator.autocast():
        if rl.kl_coef > 0:
            with loaded(reference) as ref:
                (batch.ref_logp,) = per_token(lambda b: (reference_logprobs(actor, ref, b),), batch, rl.micro_batch)
        if off_policy or algo.needs_values:
            old = per_token(old_pass, batch, rl.micro_batch)
            batch.old_logp = old[0] if off_policy else None
            batch.old_values = old[1] if algo.needs_values else None
    batch.advantages, batch.returns = algo.advantages(batch.rewards, batch.mask, batch.valid, batch.old_values, rl)
    logprob_s = time.perf_counter() - start
    with checkpointed(actor.policy, rl.gradient_checkpointing):
        stats = update(accelerator, model, optimizer, batch, rl)
    return {**stats, "logprob_s": logprob_s, "update_s": time.perf_counter() - start - logprob_s}


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Run (or resume) RL training; returns the run directory."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from zerosearch.data import load_questions
    from zerosearch.engines import make_engine
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model
    from zerosearch.rollout import run_rollouts, write_jsonl

    rl, out = cfg.rl, Path(cfg.out)
    precision = rl.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # cpu=True on a machine without CUDA: several CPU processes (torchrun) then form a gloo group instead of each
    # believing it is alone.
    accelerator = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    algos.check(rl, world)
    if cfg.model.backend == "openai":  # the server's weights would not follow the training: off-policy rollouts
        raise UserError(
            "model.backend=openai: this trainer generates with the model it trains (model.backend=hf); for generation "
            "on a vLLM server with weight sync use `zerosearch train --trainer trl` with use_vllm"
        )
    if resume:
        checkpoint.check_resume(out, cfg)
    elif checkpoint.checkpoints(out):
        raise UserError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if main:
        checkpoint.clean_partial(out)
    set_seed(cfg.seed)

    # --- model, optimizer, generation, engine, data ---------------------------------------------------------
    questions = load_questions(cfg.data, seed=cfg.seed)  # first: a missing file fails before a 7B model loads
    if not questions:
        raise UserError(f"no training questions in {cfg.data}")
    model, tokenizer = load_model(cfg.model.spec, dtype=cfg.model.dtype, device=str(accelerator.device))
    actor, reference = build_actor(model, rl)
    optimizer = make_optimizer(actor, rl)
    state = {"step": 0, "data_pos": 0, "rollbacks": 0, "lr_scale": 1.0}
    # Linear warm-up over a share of the steps (per parameter group: policy, value head), then constant;
    # `lr_scale` drops at each rollback of the collapse guard.
    warmups = [int(r * rl.steps) for r in (rl.warmup_ratio, rl.value_warmup_ratio)][: len(optimizer.param_groups)]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, [lambda s, w=w: state["lr_scale"] * min(1.0, (s + 1) / (w + 1)) for w in warmups]
    )
    model, optimizer = accelerator.prepare(actor, optimizer)  # the scheduler stays ours: one step per training step
    actor.eval()

    generator = HFGenerator(actor.policy, tokenizer)
    engine = make_engine(cfg.engine, generator=generator if cfg.simulator_shares_policy else None)
    curriculum = cfg.curriculum
    noise = schedule(curriculum.schedule, rl.steps, curriculum.p_start, curriculum.p_end, curriculum.base)
    guard = CollapseGuard(cfg.collapse_window, cfg.collapse_ratio, cfg.min_entropy)

    def restore(path: Path, **overrides) -> None:
        loaded = checkpoint.load(path, actor, optimizer, scheduler)
        guard.load_state_dict(loaded.pop("guard"))
        if loaded.get("engine"):
            engine.load_state_dict(loaded["engine"])
        state.update({k: loaded[k] for k in state}, **overrides)
        for group, base, fn in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * fn(scheduler.last_epoch)  # the lr at the current scale

    if resume:
        restore(checkpoint.checkpoints(out)[-1])
        accelerator.print(f"resumed from step {state['step']} of {out}")
    if main and not (out / "config.yaml").exists():  # a resumed run keeps its config (check_resume compared it)
        out.mkdir(parents=True, exist_ok=True)
        checkpoint.write_atomic(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    logger = MetricsLogger(out, to_dict(cfg), cfg.log_tensorboard, cfg.log_wandb, state["step"]) if main else None
    while state["step"] < rl.steps:
        step = state["step"] + 1
        t_start = time.perf_counter()

        # 1-3. questions, rollouts with the curriculum's p for this step (each process its share), rewards
        examples = take_questions(questions, state["data_pos"], rl.prompts_per_step, cfg.seed)[rank::world]
        engine_s0 = engine.meter.seconds
        trajectories = run_rollouts(
            generator,
            engine,
            examples,
            cfg.rollout,
            p_noisy=noise[step - 1],
            seed=cfg.seed * 1_000_003 + step * 1009 + rank,
            n=rl.samples_per_prompt,
            k=cfg.engine.k,
            reward=rl.reward,
            format_bonus=rl.format_reward,
        )
        rollout_s, engine_s = time.perf_counter() - t_start, engine.meter.seconds - engine_s0

        # 4-6. learn from them
        batch = collate(trajectories, tokenizer.pad_token_id, accelerator.device)
        stats = learn(accelerator, model, reference, optimizer, batch, rl)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()

        # 7. metrics (averaged over processes; counts summed), collapse guard, checkpoint
        local = {
            **rollout_metrics(trajectories, batch, rl),
            **stats,
            "tokens_per_s": batch.mask.sum().item() / max(rollout_s, 1e-9),
            "rollout_s": rollout_s,
            "generation_s": rollout_s - engine_s,
            "engine_s": engine_s,
        }
        means = accelerator.reduce(torch.tensor(list(local.values()), device=accelerator.device), "mean")
        errors = accelerator.reduce(torch.tensor(float(len(batch) - batch.valid.sum()), device=accelerator.device))
        metrics = {"step": step, "p_noisy": noise[step - 1], "lr": lr, **dict(zip(local, means.tolist()))}
        metrics.update(search_errors=int(errors), step_s=time.perf_counter() - t_start)

        problem = guard.check(metrics) if cfg.on_collapse != "off" else None
        if problem:
            saved = checkpoint.checkpoints(out)
            if cfg.on_collapse != "rollback" or not saved or state["rollbacks"] >= cfg.max_rollbacks:
                raise TrainingCollapsed(
                    f"step {step}: {problem}; stopped (on_collapse={cfg.on_collapse}, rollbacks used "
                    f"{state['rollbacks']}/{cfg.max_rollbacks}). Last checkpoint: {saved[-1] if saved else 'none'}"
                )
            scale = state["lr_scale"] * cfg.rollback_lr_factor
            restore(saved[-1], rollbacks=state["rollbacks"] + 1, lr_scale=scale)
            accelerator.print(f"step {step}: {problem}; rolled back to step {state['step']} with lr x{scale:g}")
            if logger:
                logger.truncate_after(state["step"])
            continue

        state.update(step=step, data_pos=state["data_pos"] + rl.prompts_per_step)
        if logger:
            logger.log(metrics)
        if cfg.save_trajectories:  # every process its own share
            write_jsonl(
                trajectories, out / "trajectories" / f"step-{step:06d}{f'-rank{rank}' if world > 1 else ''}.jsonl"
            )
        if main and (step % cfg.save_every == 0 or step == rl.steps):
            extra = {"guard": guard.state_dict(), "engine": engine.state_dict()}  # the engine's RNG: exact resume
            checkpoint.save(out, step, actor, tokenizer, optimizer, scheduler, {**state, **extra}, cfg.keep_checkpoints)
        accelerator.wait_for_everyone()
        if cfg.progress:  # one plain line per step: readable in a terminal and in a log file alike
            accelerator.print(
                f"step {step}/{rl.steps}: reward {metrics['reward']:.3f} kl {metrics.get('kl', 0):.4f} "
                f"entropy {metrics['entropy']:.3f} p_noisy {metrics['p_noisy']:.2f} ({metrics['step_s']:.1f} s)"
            )
    if logger:
        logger.close()
    return out
