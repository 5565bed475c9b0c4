"""The one small interface every generation back-end implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Completion:
    text: str  # decoded completion; ends with the stop string when one was hit
    token_ids: list[int]  # generated ids, cut right after the token that completed the stop string
    logprobs: list[float] | None = None  # per generated token, where the back-end has them
    finish_reason: str = "length"  # "stop" (a stop string) | "eos" | "length"
    stop: str | None = None  # the stop string that ended generation


class Generator(ABC):
    """Text or token ids in, completions out. Batched; stop strings honoured during generation."""

    tokenizer = None  # a Hugging Face tokenizer for the served model (None where the back-end has none)
    name: str = "generator"
    supports_banned = False  # whether `generate` honours `banned` (else the caller must not rely on it)

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str] | Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 256,
        stop: Sequence[str] = (),
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        banned: Sequence[Sequence[str]] | None = None,
    ) -> list[Completion]:
        """Prompts are raw text (no chat template added here) or token ids. temperature 0 = greedy.
        `banned[i]`: strings that completion i must not spell (where `supports_banned`)."""


def chat_prompt(tokenizer, user: str, system: str | None = None) -> str:
    """The user message in the model's chat template when it has one (instruct models); else the raw text."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return user
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": user}
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_text(tokenizer, text: str) -> list[int]:
    """A prompt's token ids, with the tokenizer's special tokens unless the text already starts with BOS
    (a chat-templated prompt does where the model wants one; a second BOS would be out of distribution).
    Here, not in the torch back-end, so that the rollout over an HTTP back-end never imports torch."""
    bos = tokenizer.bos_token
    return tokenizer(text, add_special_tokens=not (bos and text.startswith(bos))).input_ids
