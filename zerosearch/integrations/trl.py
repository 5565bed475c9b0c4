"""TRL's GRPOTrainer with ZeroSearch rollouts: our multi-turn protocol, engines, curriculum and reward
(see docs/integrations.md).

`SearchRollout` is a GRPOTrainer `rollout_func`. TRL's sampler already repeats each question `num_generations`
times, so the rollout runs `zerosearch.rollout.run_rollouts` once per prompt it is handed and returns the prompt
ids, the response ids (policy and environment tokens interleaved) and `env_mask` = our loss mask (1 = policy
token, 0 = observation or invalid-action token), which TRL multiplies into its own loss mask. The curriculum's p
comes from the trainer's global step (Eq. 1). `reward_function` scores with `rewards.score`.

Generation: without vLLM, the policy of the training process through our decoding loop (stop strings, a KV
cache kept across turns). With `use_vllm`, TRL's vLLM: colocate mode calls TRL's own `LLM`; server mode posts to
the `trl vllm-serve` server's OpenAI-compatible `/v1/completions`. Either way TRL pushes the trained weights to
vLLM before a step's rollouts (it does so whenever a rollout_func is set), so rollouts stay on-policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml

from zerosearch.config import TrainConfig, to_dict
from zerosearch.curriculum import schedule
from zerosearch.data.formats import QAExample
from zerosearch.engines.base import SearchEngine
from zerosearch.errors import ConfigError, UserError
from zerosearch.generation.base import Completion, Generator
from zerosearch.rewards import score
from zerosearch.rollout import run_rollouts

# rl.loss_agg -> GRPOConfig.loss_type. dr_grpo divides the token sum by a constant (max_completion_length)
# instead of by nothing: the same direction as seq-mean-token-sum, a smaller step.
LOSS_TYPES = {"token-mean": "dapo", "seq-mean-token-mean": "grpo", "seq-mean-token-sum": "dr_grpo"}


def updates_per_step(rl) -> int:
    """Optimizer steps per rollout batch (TRL's global step counts these; our `rl.steps` counts batches)."""
    total = rl.prompts_per_step * rl.samples_per_prompt
    return total // (rl.mini_batch or total) * rl.epochs


def _check(cfg: TrainConfig, world_size: int) -> None:
    """Refuse what GRPOTrainer cannot do as the recipe asks, rather than train something else silently."""
    rl = cfg.rl
    if rl.algo != "grpo":
        raise ConfigError(f"rl.algo={rl.algo} is not available with --trainer trl (GRPOTrainer): use --trainer ours")
    if rl.kl_coef > 0 and rl.kl_estimator not in ("k3", "low_var_kl"):
        raise ConfigError(f"rl.kl_estimator={rl.kl_estimator}: TRL's GRPOTrainer has k3 only")
    if cfg.simulator_shares_policy:
        raise ConfigError("simulator_shares_policy is not supported with --trainer trl (the policy trains in TRL)")
    if cfg.model.backend == "openai":
        raise ConfigError(
            "model.backend=openai: with --trainer trl, generate on vLLM through TRL, which syncs the weights: "
            "start `trl vllm-serve --model MODEL` and pass --trl use_vllm=true --trl vllm_mode=server "
            "--trl vllm_server_base_url=http://HOST:8000 (see docs/integrations.md)"
        )
    if cfg.rollout.temperature == 0:
        raise ConfigError("rollout.temperature=0: RL needs sampling (TRL divides the logits by the temperature)")
    total, micro = rl.prompts_per_step * rl.samples_per_prompt, rl.micro_batch * world_size
    mini = rl.mini_batch or total
    if total % mini or mini % micro:
        raise ConfigError(
            f"--trainer trl needs rl.micro_batch x processes ({micro}) to divide rl.mini_batch ({mini}), and "
            f"rl.mini_batch to divide prompts_per_step x samples_per_prompt ({total})"
        )


def grpo_config(cfg: TrainConfig, world_size: int = 1, **overrides):
    """The GRPOConfig of a recipe (the mapping is tabled in docs/integrations.md); `overrides` are GRPOConfig
    fields set as given (`zerosearch train --trainer trl --trl KEY=VALUE`)."""
    from trl import GRPOConfig

    _check(cfg, world_size)
    rl = cfg.rl
    total, micro = rl.prompts_per_step * rl.samples_per_prompt, rl.micro_batch * world_size
    n = updates_per_step(rl)
    precision = rl.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    report = [name for name, on in (("tensorboard", cfg.log_tensorboard), ("wandb", cfg.log_wandb)) if on]
    args = dict(
        output_dir=str(Path(cfg.out)),
        max_steps=rl.steps * n,
        learning_rate=rl.lr,
        lr_scheduler_type="constant_with_warmup",  # ours: linear warm-up, then constant
        warmup_steps=rl.warmup_ratio,  # a float in [0, 1): a share of max_steps
        weight_decay=0.0,
        max_grad_norm=rl.max_grad_norm,
        per_device_train_batch_size=rl.micro_batch,
        gradient_accumulation_steps=(rl.mini_batch or total) // micro,
        steps_per_generation=total // micro,  # one rollout batch of prompts_per_step x samples_per_prompt
        num_generations=rl.samples_per_prompt,
        num_iterations=rl.epochs,
        beta=rl.kl_coef,
        epsilon=rl.clip,
        delta=rl.dual_clip or None,
        entropy_coef=rl.entropy_coef,
        loss_type=LOSS_TYPES[rl.loss_agg],
        scale_rewards="group" if rl.norm_adv_by_std else "none",
        temperature=cfg.rollout.temperature,
        top_p=cfg.rollout.top_p,
        max_completion_length=cfg.rollout.max_context_tokens,
        # Our responses end at </answer>, not at EOS: TRL would take every one of them for truncated.
        mask_truncated_completions=False,
        disable_dropout=True,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.seed,
        logging_steps=1,
        save_steps=cfg.save_every * n,
        save_total_limit=cfg.keep_checkpoints,
        report_to=report or "none",
        disable_tqdm=not cfg.progress,
        dataloader_num_workers=0,
    )
    unknown = sorted(set(overrides) - set(GRPOConfig.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"--trl {unknown[0]}: not a GRPOConfig field")
    args.update(overrides)
    if args.get("use_vllm") and args.get("vllm_mode", "colocate") == "colocate":
        if args.get("vllm_tensor_parallel_size", 1) > 1 or args.get("vllm_enable_sleep_mode"):
            # Each process rolls out its own prompts turn by turn; TP groups and sleep mode need lock-step calls.
            raise ConfigError("with --trainer trl, colocated vLLM runs with tensor_parallel_size 1 and no sleep mode")
    return GRPOConfig(**args)


def reward_function(reward: str = "f1", format_bonus: float = 0.0):
    """A TRL reward function: `rewards.score` of each response against the row's `golden_answers`.

    With our rollout it scores the last policy turn (`answer_turn`, as `run_rollouts` does: an `<answer>` inside a
    retrieved document never counts) and returns None (TRL: unscorable, advantage 0) for a trajectory whose
    search failed; else TRL's decoded completion. Named after the metric: TRL logs `rewards/<reward>/mean`.
    """

    def fn(completions, golden_answers, answer_turn=None, stop_reason=None, p_noisy=None, searches=None, **kw):
        if kw.get("log_metric") is not None and p_noisy:  # TRL's hook for scalars computed next to the reward
            kw["log_metric"]("curriculum/p_noisy", float(p_noisy[0]))
            kw["log_metric"]("rollout/searches", sum(searches) / len(searches))
        texts = answer_turn or completions
        failed = stop_reason or [None] * len(texts)
        return [
            None if why == "search_error" else score(text, golds, reward, format_bonus)["reward"]
            for text, golds, why in zip(texts, golden_answers, failed)
        ]

    fn.__name__ = fn.__qualname__ = reward
    return fn


def train_dataset(examples: Sequence[QAExample]):
    """TRL's dataset: the question as the prompt (the rollout applies the policy template), the gold answers."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": ex.question, "golden_answers": list(ex.golden_answers)} for ex in examples])


class VLLMGenerator(Generator):
    """A vLLM `LLM` in this process (TRL's colocated engine) behind our Generator interface."""

    name = "vllm"

    def __init__(self, llm, tokenizer):
        self.llm, self.tokenizer = llm, tokenizer

    def generate(self, prompts, *, max_new_tokens=256, stop=(), temperature=1.0, top_p=1.0, seed=None):
        from vllm import SamplingParams

        params = [
            SamplingParams(
                max_tokens=max_new_tokens,
                stop=[s for s in stop if s] or None,
                include_stop_str_in_output=True,
                temperature=temperature,
                top_p=top_p,
                logprobs=0,
                seed=None if seed is None else seed + i,  # repeated prompts (a GRPO group) draw different samples
            )
            for i in range(len(prompts))
        ]
        inputs = [{"prompt": p} if isinstance(p, str) else {"prompt_token_ids": [int(t) for t in p]} for p in prompts]
        completions = []
        for out in self.llm.generate(inputs, sampling_params=params, use_tqdm=False):
            c = out.outputs[0]
            hit = c.stop_reason if isinstance(c.stop_reason, str) else None
            logprobs = [lp[t].logprob for lp, t in zip(c.logprobs, c.token_ids)] if c.logprobs else None
            reason = "stop" if hit else "eos" if c.finish_reason == "stop" else "length"
            completions.append(Completion(c.text, list(c.token_ids), logprobs, reason, hit))
        return completions


def _served_model(base_url: str) -> str:
    import httpx

    try:
        return httpx.get(base_url.rstrip("/") + "/v1/models", timeout=30).json()["data"][0]["id"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as e:
        raise UserError(f"no vLLM server answers at {base_url} (start `trl vllm-serve`): {e}") from None


class SearchRollout:
    """GRPOTrainer's `rollout_func`: our multi-turn search rollout, one trajectory per prompt.

    `examples` are the training questions: TRL hands the rollout only the prompts (the questions), so the gold
    answers that condition the simulator are looked up by question text (a question that occurs twice gets the
    gold answers of both; the reward still scores each row against its own).
    """

    def __init__(self, cfg: TrainConfig, engine: SearchEngine, examples: Sequence[QAExample]):
        self.cfg, self.engine = cfg, engine
        self.examples: dict[str, QAExample] = {}
        for ex in examples:
            known = self.examples.setdefault(ex.question, QAExample(ex.id, ex.question, [], ex.data_source))
            known.golden_answers += [g for g in ex.golden_answers if g not in known.golden_answers]
        c = cfg.curriculum
        self.noise = schedule(c.schedule, cfg.rl.steps, c.p_start, c.p_end, c.base)
        self.updates_per_step = updates_per_step(cfg.rl)
        self.calls = 0
        self.last_trajectories: list = []  # the latest call's, for inspection
        self._generator: Generator | None = None

    def p_noisy(self, global_step: int) -> float:
        """Eq. 1 at our step (a rollout batch) for TRL's global step (optimizer steps)."""
        return self.noise[min(global_step // self.updates_per_step, self.cfg.rl.steps)]

    def __call__(self, prompts: list, trainer) -> dict:
        missing = [p for p in prompts if not isinstance(p, str) or p not in self.examples]
        if missing:
            raise UserError(f"the rollout got a prompt that is not a training question: {str(missing[0])[:200]!r}")
        p = self.p_noisy(trainer.state.global_step)
        seed = self.cfg.seed * 1_000_003 + self.calls * 1009 + trainer.accelerator.process_index
        self.calls += 1
        with self._policy(trainer) as generator:
            trajectories = run_rollouts(
                generator,
                self.engine,
                [self.examples[q] for q in prompts],
                self.cfg.rollout,
                p_noisy=p,
                seed=seed,
                k=self.cfg.engine.k,
                reward=self.cfg.rl.reward,
                format_bonus=self.cfg.rl.format_reward,
            )
        empty = next((t for t in trajectories if not t.response_ids), None)
        if empty is not None:
            raise UserError(
                f"the prompt of {empty.question[:100]!r} fills rollout.max_context_tokens "
                f"({self.cfg.rollout.max_context_tokens}): raise it"
            )
        self.last_trajectories = trajectories
        return {
            "prompt_ids": [t.prompt_ids for t in trajectories],
            "completion_ids": [t.response_ids for t in trajectories],
            # vLLM's log-probs are those of TRL's sampling law (temperature applied), which its importance
            # correction compares against (None where a server sent none: TRL then skips the correction
            # there); our decoding loop's are of the raw logits, so without vLLM TRL recomputes them.
            "logprobs": (
                [t.logprobs or [None] * len(t.response_ids) for t in trajectories] if trainer.use_vllm else None
            ),
            # A trajectory whose search failed stays out of the loss, as in our trainer.
            "env_mask": [
                [0] * len(t.loss_mask) if t.stop_reason == "search_error" else t.loss_mask for t in trajectories
            ],
            # forwarded to the reward function
            "answer_turn": [next(s.text for s in reversed(t.segments) if s.role == "policy") for t in trajectories],
            "stop_reason": [t.stop_reason for t in trajectories],
            "p_noisy": [p] * len(trajectories),
            "searches": [len(t.searches) for t in trajectories],
        }

    @contextmanager
    def _policy(self, trainer):
        if trainer.use_vllm:
            yield self._vllm(trainer)
            return
        from trl.models import unwrap_model_for_generation

        from zerosearch.generation.hf import HFGenerator

        with unwrap_model_for_generation(
            trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=trainer.args.ds3_gather_for_generation
        ) as model:
            if self._generator is None or self._generator.model is not model:
                self._generator = HFGenerator(model, trainer.processing_class)
            yield self._generator

    def _vllm(self, trainer) -> Generator:
        if self._generator is None:
            args = trainer.args
            if args.vllm_mode == "colocate":
                self._generator = VLLMGenerator(trainer.vllm_generation.llm, trainer.processing_class)
            else:
                from zerosearch.generation.openai import OpenAIGenerator

                url = args.vllm_server_base_url or f"http://{args.vllm_server_host}:{args.vllm_server_port}"
                self._generator = OpenAIGenerator(url, _served_model(url))
                self._generator.tokenizer = trainer.processing_class
        return self._generator


def build_trainer(cfg: TrainConfig, engine: SearchEngine | None = None, **trl_overrides):
    """The GRPOTrainer of a recipe, wired to our rollout, engine and reward; not yet trained.

    `engine` defaults to the recipe's (`make_engine(cfg.engine)`). A model built in memory (tiny-random) is
    saved under RUN/initial-model first: TRL loads its reference model (and vLLM its weights) from a path.
    """
    import trl
    from accelerate import PartialState
    from packaging.version import Version
    from trl import GRPOTrainer

    if Version(trl.__version__) < Version("1.16"):
        raise UserError(f"--trainer trl needs trl>=1.16 (rollout_func with env_mask); installed: {trl.__version__}")

    from zerosearch.data import load_questions
    from zerosearch.engines import make_engine
    from zerosearch.models import freeze_below, load_model

    args = grpo_config(cfg, PartialState().num_processes, **trl_overrides)
    examples = load_questions(cfg.data, seed=cfg.seed)
    if not examples:
        raise UserError(f"no training questions in {cfg.data}")
    model, tokenizer = load_model(cfg.model.spec, dtype=cfg.model.dtype, device="cpu")
    if not model.name_or_path:
        path = Path(cfg.out) / "initial-model"
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        model.config._name_or_path = model.name_or_path = str(path)
    if cfg.rl.train_layers:  # the Trainer optimizes the parameters that require grad
        freeze_below(model, cfg.rl.train_layers, "rl.train_layers")
    peft_config = None
    if cfg.rl.lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.rl.lora_r,
            lora_alpha=cfg.rl.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    rollout = SearchRollout(cfg, engine or make_engine(cfg.engine), examples)
    return GRPOTrainer(
        model=model,
        reward_funcs=[reward_function(cfg.rl.reward, cfg.rl.format_reward)],
        args=args,
        train_dataset=train_dataset(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
        rollout_func=rollout,
    )


def train(cfg: TrainConfig, resume: bool = False, **trl_overrides) -> Path:
    """Train with GRPOTrainer (resuming from the last checkpoint in `cfg.out` with `resume`); saves the final
    model (LoRA merged) and tokenizer to RUN/final. Returns the run directory."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(cfg.out)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last and not resume:
        raise UserError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if resume and not last:
        raise UserError(f"--resume: no checkpoint in {out}")
    trainer = build_trainer(cfg, **trl_overrides)
    if trainer.accelerator.is_main_process:  # `zerosearch train --resume` reads the run's own recipe back
        (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    trainer.train(resume_from_checkpoint=last)
    model = trainer.model
    if cfg.rl.lora_r:
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        model.save_pretrained(out / "final")
        trainer.processing_class.save_pretrained(out / "final")
    return out
