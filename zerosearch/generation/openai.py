"""The OpenAI-compatible HTTP back-end: `/v1/completions` of a vLLM, SGLang or llama.cpp server.

Several base URLs (comma-separated) share the load round-robin, and a failed request moves on to the next one.
One request per prompt, at most `concurrency` in flight; timeouts; bounded retries with exponential back-off on
connection errors, timeouts, 429 and 5xx; a clear `GenerationError` when no server answers.

What servers differ in, and what we do about it:
- stop strings: we ask for `include_stop_str_in_output` (vLLM; others ignore it); where the text comes back
  without the stop string, we put back the one the server names (`stop_reason` in vLLM, `matched_stop` in SGLang,
  `stopping_word` in llama.cpp).
- token ids: vLLM returns them with `return_tokens_as_token_ids` (as `token_id:N` strings in the log-probs);
  elsewhere we tokenize the text with the model's tokenizer (exact for the rollout's environment pieces, which it
  tokenizes itself; an approximation for policy text).
- log-probs: those the server returns (vLLM: of the raw logits by default), else None.
- seeds: prompt i of a batch gets `seed + i`, so that repeated prompts (GRPO groups) give different samples.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from zerosearch.errors import UserError
from zerosearch.generation.base import Completion, Generator

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class GenerationError(UserError):
    """The server could not be reached or refused the request."""


def load_tokenizer(spec: str | None):
    """The tokenizer of a model spec (as `load_model` resolves it), without loading the weights."""
    if not spec:
        return None
    from transformers import AutoTokenizer

    from zerosearch.models import TINY, bundled_dir, resolve

    path = bundled_dir("smollm2-135m") if spec == TINY else resolve(spec)
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise UserError(f"cannot load the tokenizer of {spec!r}: {e}") from None


class OpenAIGenerator(Generator):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer_spec: str | None = None,
        *,
        concurrency: int = 64,
        timeout_s: float = 300.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        logprobs: bool = True,
    ):
        self.urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        if not self.urls:
            raise UserError("the openai back-end needs a base URL (model.base_url), e.g. http://localhost:8000")
        self.urls = [u if u.endswith("/v1") else u + "/v1" for u in self.urls]
        self.model = model
        # Off for a frozen simulator: llama.cpp's server then skips the logits of every prompt position.
        self.logprobs = logprobs
        self.tokenizer = load_tokenizer(tokenizer_spec)
        self.concurrency, self.retries, self.backoff_s = concurrency, retries, backoff_s
        self.client = httpx.Client(timeout=timeout_s, limits=httpx.Limits(max_connections=concurrency))
        self._next = itertools.count()
        self._lock = threading.Lock()

    def generate(
        self,
        prompts: Sequence[str] | Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 256,
        stop: Sequence[str] = (),
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        banned=None,
    ) -> list[Completion]:
        if banned and any(banned):
            raise ValueError("banned strings need the hf back-end (an OpenAI-compatible server has no such option)")
        stop = [s for s in stop if s]
        bodies = []
        for i, prompt in enumerate(prompts):
            body = {
                "model": self.model,
                "prompt": prompt if isinstance(prompt, str) else [int(t) for t in prompt],
                "max_tokens": max_new_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "include_stop_str_in_output": True,
                "return_tokens_as_token_ids": True,
                "skip_special_tokens": True,
            }
            if self.logprobs:
                body["logprobs"] = 1
            if stop:
                body["stop"] = stop
            if seed is not None:
                body["seed"] = seed + i
            bodies.append(body)
        if len(bodies) <= 1:
            return [self._complete(b, stop) for b in bodies]
        with ThreadPoolExecutor(min(self.concurrency, len(bodies))) as pool:
            return list(pool.map(lambda b: self._complete(b, stop), bodies))

    def _post(self, body: dict) -> dict:
        with self._lock:
            start = next(self._next)
        errors = []
        for attempt in range(self.retries + 1):
            url = self.urls[(start + attempt) % len(self.urls)] + "/completions"
            try:
                response = self.client.post(url, json=body)
            except httpx.HTTPError as e:
                errors.append(f"{url}: {type(e).__name__}: {e}")
            else:
                if response.status_code == 200:
                    return response.json()
                if response.status_code not in RETRY_STATUS:
                    raise GenerationError(f"{url} refused the request ({response.status_code}): {response.text[:500]}")
                errors.append(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
            if attempt < self.retries:
                time.sleep(self.backoff_s * 2**attempt)
        raise GenerationError(
            f"no OpenAI-compatible server answered after {self.retries + 1} tries (is it running?): {errors[-1]}"
        )

    def _complete(self, body: dict, stop: list[str]) -> Completion:
        choice = self._post(body)["choices"][0]
        text = choice.get("text") or ""
        reason = choice.get("finish_reason") or "length"
        hit = None
        if reason == "stop":  # a stop string, or else the end-of-sequence token
            named = next(
                (choice[k] for k in ("stop_reason", "matched_stop", "stopping_word") if isinstance(choice.get(k), str)),
                None,
            )
            hit = named if named in stop else next((s for s in stop if text.endswith(s)), None)
            reason = "stop" if hit else "eos"
        trimmed = hit is not None and not text.endswith(hit)
        if trimmed:
            text += hit

        token_ids, logprobs = _tokens(choice.get("logprobs") or {})
        if token_ids is not None and trimmed:
            token_ids, logprobs = token_ids + self._ids(hit), None
        if token_ids is None:
            token_ids = self._ids(text)
            logprobs = logprobs if logprobs is not None and len(logprobs) == len(token_ids) else None
        return Completion(text=text, token_ids=token_ids, logprobs=logprobs, finish_reason=reason, stop=hit)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids if self.tokenizer is not None else []


def _tokens(logprobs: dict) -> tuple[list[int] | None, list[float] | None]:
    """Token ids (where the server sends them as `token_id:N`) and per-token log-probs from a choice's log-probs."""
    tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs")
    values = values if values and all(isinstance(v, (int, float)) for v in values) else None
    if not tokens or not all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
        return None, values
    ids = [int(t.split(":", 1)[1]) for t in tokens]
    return ids, values if values is not None and len(values) == len(ids) else None
