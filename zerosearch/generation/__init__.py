"""Generation back-ends behind one interface: in-process transformers, or an OpenAI-compatible server."""

from __future__ import annotations

from zerosearch.config import ModelConfig
from zerosearch.generation.base import Completion, Generator, chat_prompt, encode_text

__all__ = ["Completion", "Generator", "chat_prompt", "encode_text", "make_generator"]


def make_generator(cfg: ModelConfig, logprobs: bool = True) -> Generator:
    """A generator for a model config; `logprobs=False` tells a server that no caller reads them."""
    if cfg.backend == "openai":
        from zerosearch.generation.openai import OpenAIGenerator

        return OpenAIGenerator(
            base_url=cfg.base_url, model=cfg.api_model or cfg.spec, tokenizer_spec=cfg.spec, logprobs=logprobs
        )
    from zerosearch.generation.hf import HFGenerator
    from zerosearch.models import load_model

    model, tokenizer = load_model(cfg.spec, dtype=cfg.dtype)
    return HFGenerator(model, tokenizer)
