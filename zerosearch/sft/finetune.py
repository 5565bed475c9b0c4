"""Fine-tune the simulator on the built SFT set with TRL's SFTTrainer (see docs/data.md).

The data is TRL's conversational prompt-completion format, so the loss covers the assistant turn only
(`completion_only_loss`). Full fine-tuning, the top blocks only (`train_layers`, cheaper on a CPU) or LoRA; a
LoRA adapter is merged before saving, so the output directory is a plain model + tokenizer that `--model PATH`
loads anywhere (engines, server). Checkpoints go to `OUT/checkpoints`; a rerun resumes from the last one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from zerosearch.config import SFTConfig
from zerosearch.errors import UserError


def _dataset(data_dir: Path):
    from datasets import load_dataset

    files = {"train": data_dir / "train.jsonl"}
    if not files["train"].is_file() or files["train"].stat().st_size == 0:
        raise UserError(
            f"no training examples: {files['train']} is missing or empty (run `zerosearch sft build` first)"
        )
    if (data_dir / "validation.jsonl").is_file() and (data_dir / "validation.jsonl").stat().st_size > 0:
        files["validation"] = data_dir / "validation.jsonl"
    data = load_dataset("json", data_files={k: str(v) for k, v in files.items()})
    for split in data.values():
        if not {"prompt", "completion"} <= set(split.column_names):
            raise UserError(f"{data_dir}: examples need 'prompt' and 'completion' fields, got {split.column_names}")
    # Only the chat pair goes to TRL; the other columns (mode, question, …) are for `sft grade`.
    return {name: split.select_columns(["prompt", "completion"]) for name, split in data.items()}


def _log_lines(log: Callable[[str], None]):
    """A TRL/transformers callback writing one line per logging step (the build's progress, terminal or not)."""
    from transformers import TrainerCallback

    class LogLines(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                elapsed = time.perf_counter() - self.start
                log(f"step {state.global_step}/{state.max_steps} loss {float(logs['loss']):.3f} ({elapsed:.0f} s)")

    return LogLines()


def make_trainer(cfg: SFTConfig, progress: bool = True, log: Callable[[str], None] | None = None):
    """The TRL SFTTrainer for a config: model, data and arguments wired, not yet trained. `log` gets one line per
    logging step instead of the progress bar."""
    import torch
    from transformers import PrinterCallback
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    from zerosearch.models import freeze_below, load_model

    class InOrderSFTTrainer(SFTTrainer):
        """Examples in the file's order (`sft.shuffle=false`): the transformers versions we support differ in how
        (and whether) their arguments say so."""

        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    data = _dataset(Path(cfg.data))
    model, tokenizer = load_model(cfg.model, dtype=cfg.dtype, device="cpu")
    model.train()
    if cfg.train_layers:
        freeze_below(model, cfg.train_layers, "sft.train_layers")
    tokenizer.padding_side = "right"  # training pads on the right; generation (load_model) pads on the left
    has_val = "validation" in data
    # transformers 5.x renamed gradient checkpointing to activation checkpointing (the old field warns)
    renamed = "activation_checkpointing" in {f.name for f in dataclasses.fields(TRLConfig)}
    checkpointing = {"activation_checkpointing" if renamed else "gradient_checkpointing": cfg.gradient_checkpointing}
    args = TRLConfig(
        output_dir=str(Path(cfg.out) / "checkpoints"),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_steps,
        max_length=cfg.max_length,
        completion_only_loss=True,
        **checkpointing,
        logging_steps=max(1, min(10, cfg.steps // 10)),
        save_strategy="steps" if cfg.save_every else "no",
        save_steps=max(cfg.save_every, 1),  # unused when save_every = 0
        save_total_limit=2,
        eval_strategy="steps" if has_val and cfg.eval_every else "no",
        eval_steps=cfg.eval_every or None,
        bf16=cfg.dtype == "bf16",
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=not progress or log is not None,
        seed=cfg.seed,
    )
    peft_config = None
    if cfg.lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    trainer = (SFTTrainer if cfg.shuffle else InOrderSFTTrainer)(
        model=model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data.get("validation"),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if log is not None:
        trainer.remove_callback(PrinterCallback)  # it would print the raw log dicts to stdout
        trainer.add_callback(_log_lines(log))
    return trainer


def finetune(cfg: SFTConfig, progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Train (resuming from the last checkpoint in OUT/checkpoints), then save the merged model + tokenizer to OUT."""
    from transformers.trainer_utils import get_last_checkpoint

    trainer = make_trainer(cfg, progress, log)
    out = Path(cfg.out)
    checkpoints = out / "checkpoints"
    has_val = trainer.eval_dataset is not None
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    eval_loss = trainer.evaluate()["eval_loss"] if has_val and cfg.eval_every else None

    model = trainer.model
    if cfg.lora_r:
        model = model.merge_and_unload()
    tokenizer = trainer.processing_class
    tokenizer.padding_side = "left"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    stats = {
        "model": cfg.model,
        "steps": trainer.state.global_step,
        "resumed_from": resume,
        "train_examples": len(trainer.train_dataset),
        "validation_examples": len(trainer.eval_dataset) if has_val else 0,
        "train_loss": result.training_loss,
        "eval_loss": eval_loss,
        "loss_history": [
            {k: v for k, v in h.items() if k in ("step", "loss", "eval_loss")} for h in trainer.state.log_history
        ],
        "seconds": round(seconds, 1),
        "lora_r": cfg.lora_r,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
    }
    (out / "train_stats.json").write_text(json.dumps(stats, indent=2))
    return stats
