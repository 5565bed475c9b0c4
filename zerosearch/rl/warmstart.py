"""An optional warm start before RL: a short SFT on oracle demonstrations of the search protocol.

Departure from the paper: ZeroSearch starts RL from the base or instruct model. We add this optional step
because a 135M policy (smollm2-135m) never writes a `<search>` with the Search-R1 prompt, so RL from the reward
alone has nothing to reinforce. The demonstrations come from the same rollout machinery RL uses
(`run_rollouts`), with a scripted policy that searches each hop's sub-question of a mini-world question and
then answers, against the real BM25 engine; only those whose every observation contains its hop's answer are
kept (rejection sampling on the real engine). The loss is the next-token NLL of the policy tokens only
(the observations are context, as in RL).

    warm = warm_start("smollm2-135m", "runs/warm", n_examples=64, steps=30)
    zerosearch train --model runs/warm ...
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from zerosearch import prompts
from zerosearch.config import EngineConfig, RLConfig, RolloutConfig
from zerosearch.data.formats import QAExample
from zerosearch.errors import UserError
from zerosearch.generation.base import Completion, Generator, chat_prompt, encode_text
from zerosearch.rewards import normalize_answer


def script_for(example: QAExample) -> list[str]:
    """The oracle's turns: one think-and-search per hop (a bridge hop's question already names the bridge
    entity), then the answer."""
    turns = [
        f"<think> I need to find out: {h['question']} </think>\n<search> {h['question']} </search>"
        for h in example.meta["hops"]
    ]
    answer = example.golden_answers[0]
    return turns + [f"<think> The documents say the answer is {answer}. </think>\n<answer> {answer} </answer>"]


class ScriptedPolicy(Generator):
    """Replays each question's script, one turn per call, tokenized by the policy's own tokenizer. A trajectory
    is recognized by its prompt ids (the prefix of its context), built the way the rollout builds them."""

    name = "scripted"

    def __init__(self, tokenizer, examples: list[QAExample]):
        self.tokenizer = tokenizer
        self.scripts: dict[tuple[int, ...], list[str]] = {}
        for ex in examples:
            ids = tuple(encode_text(tokenizer, chat_prompt(tokenizer, prompts.policy_prompt(ex.question))))
            self.scripts[ids] = script_for(ex)
        self.lengths = sorted({len(k) for k in self.scripts})
        self.turn = dict.fromkeys(self.scripts, 0)

    def generate(self, prompts_, *, max_new_tokens=256, stop=(), temperature=1.0, top_p=1.0, seed=None):
        out = []
        for context in prompts_:
            key = next(k for n in self.lengths if (k := tuple(context[:n])) in self.scripts)
            text = self.scripts[key][self.turn[key]]
            self.turn[key] += 1
            ids = self.tokenizer(text, add_special_tokens=False).input_ids
            hit = next((s for s in stop if text.endswith(s)), None)
            finish = "stop" if hit else "eos"
            if len(ids) > max_new_tokens:  # as a real back-end: cut, and the demonstration fails
                ids, hit, finish = ids[:max_new_tokens], None, "length"
            out.append(Completion(self.tokenizer.decode(ids), ids, None, finish, hit))
        return out


def is_faithful(traj, example: QAExample) -> bool:
    """Answered, one observation per hop, and each observation (as the policy saw it) holds its hop's answer."""
    observations = [s.text for s in traj.segments if s.role == "env"]
    hops = example.meta["hops"]
    return (
        traj.stop_reason == "answer"
        and traj.em == 1.0
        and len(observations) == len(hops)
        and all(normalize_answer(h["answer"]) in normalize_answer(o) for h, o in zip(hops, observations))
    )


def demonstrations(
    tokenizer, engine, examples: list[QAExample], rollout_cfg: RolloutConfig, k: int, n: int | None = None
):
    """(kept, n_rejected): oracle trajectories of `examples` (in order, at most `n` kept) through `run_rollouts`."""
    from zerosearch.rollout import run_rollouts

    examples = list({ex.question: ex for ex in examples}.values())  # a script per prompt
    kept, rejected = [], 0
    for start in range(0, len(examples), 64):  # chunks, so that `n` demonstrations cost about n rollouts
        chunk = examples[start : start + 64]
        trajs = run_rollouts(ScriptedPolicy(tokenizer, chunk), engine, chunk, rollout_cfg, greedy=True, k=k)
        for traj, ex in zip(trajs, chunk):
            if is_faithful(traj, ex):
                kept.append(traj)
            else:
                rejected += 1
        if n is not None and len(kept) >= n:
            return kept[:n], rejected
    return kept, rejected


def policy_nll(model, trajectories, pad_id: int, micro_batch: int = 4) -> float:
    """Mean NLL per policy token of the trajectories (no gradient)."""
    import torch

    from zerosearch.rl.policy import collate, logprobs_of

    total = count = 0.0
    with torch.no_grad():
        for i in range(0, len(trajectories), micro_batch):
            batch = collate(trajectories[i : i + micro_batch], pad_id, next(model.parameters()).device)
            logp = logprobs_of(model, batch)[0]
            total += -(logp * batch.mask).sum().item()
            count += batch.mask.sum().item()
    return total / max(count, 1.0)


def sft(
    actor,
    trajectories,
    pad_id: int,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    micro_batch: int,
    seed: int,
    gradient_checkpointing: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> None:
    """`steps` AdamW steps of policy-token NLL, each over `batch_size` demonstrations of a seeded endless shuffle,
    accumulated over micro-batches (normalized by the batch's token count: one big batch's gradient). `on_step(step,
    nll)` after each. `gradient_checkpointing` recomputes each block's activations in the backward pass."""
    import torch

    from zerosearch.rl.policy import adamw, checkpointed, collate, logprobs_of
    from zerosearch.rl.trainer import take_questions

    device = next(actor.parameters()).device
    optimizer = adamw([p for p in actor.parameters() if p.requires_grad], lr=lr)
    with checkpointed(actor.policy, gradient_checkpointing):
        for step in range(steps):
            rows = take_questions(trajectories, step * batch_size, batch_size, seed)
            n_tokens = sum(sum(t.loss_mask) for t in rows)
            nll = 0.0
            for i in range(0, len(rows), micro_batch):
                batch = collate(rows[i : i + micro_batch], pad_id, device)
                logp = logprobs_of(actor, batch)[0]
                loss = -(logp * batch.mask).sum() / n_tokens
                loss.backward()
                nll = nll + loss.detach()  # read once per step (`.item()` per micro-batch would sync a GPU each time)
            torch.nn.utils.clip_grad_norm_(actor.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if on_step:
                on_step(step + 1, float(nll))


def _save(model, tokenizer, demos, stats: dict, out: Path) -> None:
    """Model, tokenizer, the demonstrations and the statistics into `out`, atomically (temp dir + rename)."""
    from zerosearch.models import quiet_progress
    from zerosearch.rollout import write_jsonl

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        with quiet_progress():
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_jsonl(demos, tmp / "demonstrations.jsonl")
        (tmp / "warmstart.json").write_text(json.dumps(stats, indent=2) + "\n")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def warm_start(
    model_spec: str,
    out_dir: str | Path,
    *,
    n_examples: int = 64,
    steps: int = 30,
    lr: float = 5e-5,
    batch_size: int = 8,
    k: int = 3,
    seed: int = 0,
    rollout_cfg: RolloutConfig | None = None,
    lora_r: int = 0,
    micro_batch: int = 1,
    gradient_checkpointing: bool = False,
    data: str = "mini-world:train",
    corpus: str = "mini-world:corpus",
    log: Callable[[str], None] = lambda line: None,
) -> Path:
    """SFT `model_spec` on `n_examples` rejection-sampled oracle demonstrations; returns `out_dir`, a model
    directory for `load_model` (LoRA adapters, when `lora_r` > 0, are merged into it). `micro_batch` demonstrations
    per forward/backward: the gradient is the same for any value; 1 pads nothing, which on a CPU is both the fastest
    and the smallest (a step of 4: 35 vs 46 s, 4.6 vs 9.2 GiB at 4). `log` gets a line per stage and per SFT step
    (minutes on a CPU)."""
    from zerosearch.data import load_questions
    from zerosearch.engines import make_engine
    from zerosearch.models import load_model
    from zerosearch.rl.policy import build_actor

    out = Path(out_dir)
    if out.exists():
        raise UserError(f"{out} already exists: choose another --out or delete it")
    if min(n_examples, steps, batch_size, micro_batch) < 1 or lr <= 0:
        raise UserError("n_examples, steps, batch_size and micro_batch must be >= 1 and lr > 0")
    start = time.perf_counter()
    rollout_cfg = rollout_cfg or RolloutConfig()
    model, tokenizer = load_model(model_spec)
    engine = make_engine(EngineConfig(name="bm25", corpus=corpus, k=k))
    questions = load_questions(data)
    random.Random(seed).shuffle(questions)
    demos, rejected = demonstrations(tokenizer, engine, questions, rollout_cfg, k, n_examples)
    if not demos:
        raise UserError(
            f"no demonstration of {data} passed the rejection check (every observation must hold its hop's answer)"
        )

    def elapsed() -> str:
        return f"({time.perf_counter() - start:.0f} s)"

    log(f"warm start: {len(demos)} demonstrations kept, {rejected} rejected {elapsed()}")
    actor, _ = build_actor(model, RLConfig(lora_r=lora_r, kl_coef=0.0))
    # Measured on a sample: over all the demonstrations, the two passes took 40% as long as the SFT on a CPU.
    sample = demos[:batch_size]
    nll_before = policy_nll(actor, sample, tokenizer.pad_token_id, micro_batch)
    log(f"warm start: policy-token NLL of {len(sample)} demonstrations {nll_before:.3f} {elapsed()}")
    sft(
        actor,
        demos,
        tokenizer.pad_token_id,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        micro_batch=micro_batch,
        seed=seed,
        gradient_checkpointing=gradient_checkpointing,
        on_step=lambda step, nll: log(f"warm start: SFT step {step}/{steps}, batch NLL {nll:.3f} {elapsed()}"),
    )
    nll_after = policy_nll(actor, sample, tokenizer.pad_token_id, micro_batch)
    log(f"warm start: NLL {nll_before:.3f} -> {nll_after:.3f} {elapsed()}")
    policy = actor.policy.merge_and_unload() if lora_r > 0 else actor.policy
    stats = dict(
        model=model_spec,
        demonstrations=len(demos),
        rejected=rejected,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        lora_r=lora_r,
        nll_sample=len(sample),  # the first demonstrations: nll_before/after are theirs
        nll_before=nll_before,
        nll_after=nll_after,
        seconds=time.perf_counter() - start,
    )
    _save(policy, tokenizer, demos, stats, out)
    return out


def warm_start_from(cfg, out_dir: str | Path, log: Callable[[str], None] = lambda line: None) -> Path:
    """`warm_start` of cfg.model.spec as a root config says: its `warmstart` section, and the rollout limits, k,
    seed and lora_r of the recipe it will train with."""
    w = cfg.warmstart
    return warm_start(
        cfg.model.spec,
        out_dir,
        n_examples=w.examples,
        steps=w.steps,
        lr=w.lr,
        batch_size=w.batch_size,
        k=cfg.engine.k,
        seed=cfg.seed,
        rollout_cfg=cfg.rollout,
        lora_r=cfg.rl.lora_r,
        micro_batch=w.micro_batch,
        gradient_checkpointing=w.gradient_checkpointing,
        log=log,
    )
