"""Fine-tune the simulator on the built SFT set with TRL's SFTTrainer (DESIGN §2.7 step 4).

The data is TRL's conversational prompt-completion format, so the loss covers the assistant turn only
(`completion_only_loss`). Full fine-tuning or LoRA; a LoRA adapter is merged before saving, so the output
directory is a plain model + tokenizer that `--model PATH` loads anywhere (engines, server). Checkpoints go
to `OUT/checkpoints`; a rerun resumes from the last one.
"""

from __future__ import annotations

import json
import time
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


def make_trainer(cfg: SFTConfig, progress: bool = True):
    """The TRL SFTTrainer for a config: model, data and arguments wired, not yet trained."""
    import torch
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    from zerosearch.models import load_model

    data = _dataset(Path(cfg.data))
    model, tokenizer = load_model(cfg.model, dtype=cfg.dtype, device="cpu")
    model.train()
    tokenizer.padding_side = "right"  # training pads on the right; generation (load_model) pads on the left
    has_val = "validation" in data
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
        logging_steps=max(1, min(10, cfg.steps // 10)),
        save_steps=cfg.save_every,
        save_total_limit=2,
        eval_strategy="steps" if has_val and cfg.eval_every else "no",
        eval_steps=cfg.eval_every or None,
        bf16=cfg.dtype == "bf16",
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=not progress,
        seed=cfg.seed,
    )
    peft_config = None
    if cfg.lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data.get("validation"),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def finetune(cfg: SFTConfig, progress: bool = True) -> dict:
    """Train (resuming from the last checkpoint in OUT/checkpoints), then save the merged model + tokenizer to OUT."""
    from transformers.trainer_utils import get_last_checkpoint

    trainer = make_trainer(cfg, progress)
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
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
    }
    (out / "train_stats.json").write_text(json.dumps(stats, indent=2))
    return stats
