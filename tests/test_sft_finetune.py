import json

import pytest

from zerosearch import prompts
from zerosearch.config import SFTConfig
from zerosearch.models import load_model
from zerosearch.sft.finetune import finetune, make_trainer


def _example(i: int, mode: str) -> dict:
    user = prompts.simulator_sft_prompt(f"query {i}", f"question {i}?", [f"answer{i}"], mode)
    docs = "\n".join(f"Doc {j}: document {j} about answer{i}" for j in range(1, 6))
    return {
        "prompt": [{"role": "system", "content": ""}, {"role": "user", "content": user}],
        "completion": [{"role": "assistant", "content": docs}],
        "mode": mode,
        "question_id": f"q{i}",
        "question": f"question {i}?",
        "golden_answers": [f"answer{i}"],
        "query": f"query {i}",
    }


@pytest.fixture()
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "train.jsonl").write_text(
        "".join(json.dumps(_example(i, ("useful", "noisy")[i % 2])) + "\n" for i in range(6))
    )
    (d / "validation.jsonl").write_text(json.dumps(_example(9, "useful")) + "\n")
    return d


def test_loss_is_on_the_assistant_turn_only(data_dir, tmp_path):
    trainer = make_trainer(
        SFTConfig(model="tiny-random", data=str(data_dir), out=str(tmp_path / "m"), steps=1), progress=False
    )
    row = trainer.train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]  # -100 = no loss
    tokenizer = trainer.processing_class
    trained = tokenizer.decode([t for t, label in zip(ids, labels) if label != -100])
    context = tokenizer.decode([t for t, label in zip(ids, labels) if label == -100])
    assert trained.startswith("Doc 1: document 1 about answer") and trained.rstrip().endswith("<|im_end|>")
    assert "Useful Output:" in context and "Doc 1" not in context
    # TRL checkpoints activations by default; a small model does not need the recomputation (a third of a step)
    assert trainer.args.gradient_checkpointing is False


def test_finetune_saves_a_loadable_model_and_resumes(data_dir, tmp_path):
    out = tmp_path / "model"
    cfg = SFTConfig(
        model="tiny-random",
        data=str(data_dir),
        out=str(out),
        steps=2,
        batch_size=2,
        save_every=1,
        eval_every=2,
        lr=1e-3,
    )
    stats = finetune(cfg, progress=False)
    assert stats["steps"] == 2 and stats["resumed_from"] is None and stats["eval_loss"] is not None
    assert (out / "train_stats.json").exists() and (out / "checkpoints" / "checkpoint-2").is_dir()
    model, tokenizer = load_model(str(out))
    assert tokenizer.padding_side == "left" and model.config.num_hidden_layers == 2

    stats = finetune(SFTConfig(**{**cfg.__dict__, "steps": 3}), progress=False)
    assert stats["resumed_from"].endswith("checkpoint-2") and stats["steps"] == 3


def test_lora_is_merged_before_saving(data_dir, tmp_path):
    out = tmp_path / "lora"
    finetune(
        SFTConfig(model="tiny-random", data=str(data_dir), out=str(out), steps=1, lora_r=4, eval_every=0),
        progress=False,
    )
    assert not (out / "adapter_config.json").exists()
    model, _ = load_model(str(out))
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_missing_data_is_a_clear_error(tmp_path):
    from zerosearch.errors import UserError

    with pytest.raises(UserError, match="sft build"):
        finetune(SFTConfig(model="tiny-random", data=str(tmp_path), out=str(tmp_path / "m"), steps=1), progress=False)
