"""A model exported to GGUF (zerosearch/serve/llamacpp.py) read by llama.cpp itself: the same logits as the
transformers model, and the simulator engine served by llama.cpp's OpenAI-compatible server on loopback."""

import numpy as np
import pytest
import torch
from llama_cpp import Llama

from zerosearch.config import EngineConfig
from zerosearch.engines import make_engine
from zerosearch.engines.base import SearchRequest
from zerosearch.errors import UserError
from zerosearch.generation.hf import HFGenerator
from zerosearch.models import load_model, tiny_random
from zerosearch.serve.app import running_server
from zerosearch.serve.llamacpp import cached_gguf, export_gguf, server_app

TEXT = "The capital of France is Paris, and the capital of Italy is Rome: two cities of old Europe."


@pytest.fixture(scope="module")
def sharp_model():
    """tiny-random with larger q/k projections: attention far from uniform, so a wrong rotary layout shows."""
    model, tokenizer = tiny_random()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(20)
            layer.self_attn.k_proj.weight.mul_(20)
    return model, tokenizer


def llama_cpp_logits(path, ids) -> np.ndarray:
    llm = Llama(str(path), n_ctx=256, logits_all=True, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


@pytest.mark.parametrize("quant, tol", [("F32", 2e-3), ("F16", 2e-2), ("Q8_0", 0.1)])
def test_llama_cpp_computes_the_models_logits_from_the_export(sharp_model, tmp_path, quant, tol):
    model, tokenizer = sharp_model
    ids = tokenizer(TEXT).input_ids
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    got = llama_cpp_logits(export_gguf(model, tokenizer, tmp_path / "m.gguf", quant), ids)
    assert np.abs(got - want).max() < tol
    assert (got.argmax(-1) == want.argmax(-1)).mean() > 0.9


def test_the_rotary_layout_matters_for_the_logits_check(sharp_model, tmp_path, monkeypatch):
    model, tokenizer = sharp_model
    ids = tokenizer(TEXT).input_ids
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    monkeypatch.setattr("zerosearch.serve.llamacpp._permute", lambda weight, n_head: weight)
    got = llama_cpp_logits(export_gguf(model, tokenizer, tmp_path / "m.gguf", "F32"), ids)
    assert np.abs(got - want).max() > 2e-2


def test_export_refuses_what_it_cannot_write(tmp_path):
    from transformers import MistralConfig, MistralForCausalLM

    model, tokenizer = tiny_random()
    other = MistralForCausalLM(
        MistralConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    with pytest.raises(UserError, match="Llama-architecture"):
        export_gguf(other, tokenizer, tmp_path / "m.gguf")
    tokenizer.add_tokens(["<zerosearch-extra>"])
    with pytest.raises(UserError, match="tokenizer"):
        export_gguf(model, tokenizer, tmp_path / "m.gguf")
    with pytest.raises(UserError, match="Q4_K"):
        export_gguf(model, tokenizer, tmp_path / "m.gguf", "Q4_K")
    assert not list(tmp_path.iterdir())


def test_the_simulator_engine_searches_through_llama_cpps_server():
    path = cached_gguf("tiny-random", "F32")
    assert cached_gguf("tiny-random", "F32") == path  # exported once
    with running_server(server_app(path, "tiny-random", n_ctx=1024)) as url:
        cfg = EngineConfig(
            name="simulator",
            simulator_model="tiny-random",
            simulator_base_url=url,
            simulator_max_tokens=24,
            simulator_temperature=0.0,
        )
        engine = make_engine(cfg)
        requests = [SearchRequest(query=q, k=2, mode="useful") for q in ("capital of France", "who wrote Hamlet")]
        results = engine.search(requests)
        assert [len(docs) for docs in results] == [2, 2]

        # Greedy through the server = greedy of the transformers model the GGUF came from.
        model, tokenizer = load_model("tiny-random")
        want = HFGenerator(model, tokenizer).generate([TEXT], max_new_tokens=12, temperature=0.0)[0]
        got = engine.generator.generate([TEXT], max_new_tokens=12, temperature=0.0)[0]
        assert got.text == want.text
