"""The transformers back-end: batched generation with our own decoding loop over the model's forward pass.

Why not `model.generate`: we check stop strings per sequence after every token and drop a finished sequence from
the batch at once; we return the log-prob of every sampled token; and we can keep each sequence's KV cache between
calls, so that a multi-turn rollout, which calls again with `prompt + completion + observation`, only encodes the
observation (`with generator.prefix_cache(): ...`, see `PrefixCache`).

Log-probs are `log_softmax(raw logits)` at the sampled token — the policy's own distribution, before temperature
and top-p — which is what the RL importance ratio compares against (not the tempered, truncated sampling law).

`Completion.text` is `decode(token_ids)`: when the token that completes a stop string carries a few more
characters (e.g. `>\n`), the text keeps them, so that text and token ids always describe the same tokens.
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from zerosearch.generation.base import Completion, Generator, encode_text


class PrefixCache:
    """Per-sequence KV caches of earlier calls, keyed by the token ids they encode, bounded in bytes (oldest out).

    A later prompt that extends a cached sequence reuses its keys and values and only encodes the new tokens.
    An entry is handed out once: the call that takes it stores the longer sequence it produces.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.lengths: Counter[int] = Counter()
        self.bytes = 0
        self.hits = self.reused_tokens = 0

    @staticmethod
    def _size(kv) -> int:
        return sum(k.numel() * k.element_size() * 2 for k, _ in kv)

    def put(self, tokens: tuple[int, ...], kv) -> None:
        if tokens in self.entries or not tokens:
            return
        self.entries[tokens] = kv
        self.lengths[len(tokens)] += 1
        self.bytes += self._size(kv)
        while self.bytes > self.max_bytes and self.entries:
            self._pop(next(iter(self.entries)))

    def _pop(self, tokens):
        kv = self.entries.pop(tokens)
        self.lengths[len(tokens)] -= 1
        if not self.lengths[len(tokens)]:
            del self.lengths[len(tokens)]
        self.bytes -= self._size(kv)
        return kv

    def take(self, ids: list[int]):
        """(n, kv) of the longest cached strict prefix of `ids` (one token at least must remain to encode), or None."""
        for n in sorted((n for n in self.lengths if n < len(ids)), reverse=True):
            key = tuple(ids[:n])
            if key in self.entries:
                self.hits += 1
                self.reused_tokens += n
                return n, self._pop(key)
        return None


class HFGenerator(Generator):
    name = "hf"
    supports_banned = True

    def __init__(self, model, tokenizer, *, prefix_cache_bytes: int = 2 << 30):
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        self.prefix_cache_bytes = prefix_cache_bytes
        # transformers >= 5.x names the forward's cache argument `cache`; earlier versions `past_key_values`. A PEFT
        # model's forward takes **kwargs: the name is read from the model it wraps.
        forward = (model.get_base_model() if hasattr(model, "get_base_model") else model).forward
        self._cache_arg = "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"
        self.cache: PrefixCache | None = None
        self._token_texts: list[str] | None = None
        self._stop_candidates: dict[tuple[str, ...], torch.Tensor] = {}
        # Middle padding (cached part | new part) would shift a sliding window: reuse only with full attention.
        text_cfg = model.config.get_text_config(decoder=True)
        layer_types = getattr(text_cfg, "layer_types", None)
        sliding = getattr(text_cfg, "use_sliding_window", getattr(text_cfg, "sliding_window", None))  # Qwen2 has both
        self.can_reuse = all(t == "full_attention" for t in layer_types) if layer_types else not sliding

    @contextmanager
    def prefix_cache(self):
        """Keep each sequence's KV cache between calls inside this block (the weights must not change in it)."""
        if not self.can_reuse or self.cache is not None:
            yield self.cache
            return
        self.cache = PrefixCache(self.prefix_cache_bytes)
        try:
            yield self.cache
        finally:
            self.cache = None

    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        return encode_text(self.tokenizer, prompt) if isinstance(prompt, str) else [int(t) for t in prompt]

    @torch.inference_mode()
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
        ids = [self.encode(p) for p in prompts]
        if any(not x for x in ids):
            raise ValueError("empty prompt: give at least one token")
        out = [[] for _ in ids]
        logps = [[] for _ in ids]
        finish = ["length"] * len(ids)
        hit: list[str | None] = [None] * len(ids)
        stop = tuple(s for s in stop if s)
        if max_new_tokens > 0 and ids:
            if banned is not None and len(banned) != len(ids):
                raise ValueError(f"banned: {len(banned)} lists for {len(ids)} prompts")
            bans = [self._ban_sequences(b) for b in banned] if banned else [[] for _ in ids]
            with _head_as_matrix_vector(self.model):
                self._decode(ids, out, logps, finish, hit, max_new_tokens, stop, temperature, top_p, seed, bans)
        return [
            Completion(
                text=self.tokenizer.decode(o, skip_special_tokens=True),
                token_ids=o,
                logprobs=lp,
                finish_reason=f,
                stop=s,
            )
            for o, lp, f, s in zip(out, logps, finish, hit)
        ]

    def _ban_sequences(self, strings: Sequence[str]) -> list[list[int]]:
        """Token sequences that spell each string as a word start (with and without a leading space)."""
        seqs = {tuple(self.tokenizer.encode(v, add_special_tokens=False)) for s in strings if s for v in (s, " " + s)}
        return [list(x) for x in seqs if x]

    def _decode(self, ids, out, logps, finish, hit, max_new_tokens, stop, temperature, top_p, seed, bans):
        gen = torch.Generator(self.device).manual_seed(seed) if seed is not None else None
        reused = [self.cache.take(x) if self.cache is not None else None for x in ids]
        cache, input_ids, attention, positions = self._pack(ids, reused)
        candidates = self._candidates(stop) if stop else None
        banning = any(bans)
        width = 4 * max((len(s) for s in stop), default=0) + 2  # tokens enough to spell any stop string
        rows = list(range(len(ids)))  # batch row -> prompt index
        for step in range(max_new_tokens):
            logits = (
                self.model(
                    input_ids=input_ids,
                    attention_mask=attention,
                    position_ids=positions,
                    use_cache=True,
                    logits_to_keep=1,
                    **{self._cache_arg: cache},
                )
                .logits[:, -1]
                .float()
            )
            # Only a banned string's last token is masked, once the rest of it is written: words that share a prefix
            # with it stay writable (other tokenizations of it are not caught; the report card's leak rate is).
            cut = (
                [
                    (r, seq[-1])
                    for r, i in enumerate(rows)
                    for seq in bans[i]
                    if len(seq) == 1 or out[i][-len(seq) + 1 :] == seq[:-1]
                ]
                if banning
                else []
            )
            if cut:
                logits[[r for r, _ in cut], [t for _, t in cut]] = -math.inf
            tokens = _sample(logits, temperature, top_p, gen)
            chosen = torch.log_softmax(logits, dim=-1).gather(1, tokens[:, None])[:, 0]
            may_stop = candidates[tokens].tolist() if stop else None
            done = []
            for r, (i, t, lp) in enumerate(zip(rows, tokens.tolist(), chosen.tolist())):
                out[i].append(t)
                logps[i].append(lp)
                if t in self.eos_ids:
                    finish[i] = "eos"
                elif stop and may_stop[r] and (s := _stop_hit(self.tokenizer.decode(out[i][-width:]), stop)):
                    finish[i], hit[i] = "stop", s
                elif step + 1 < max_new_tokens:
                    continue
                done.append(r)
            if self.cache is not None:
                for r in done:
                    self._save(cache, attention, r, ids[rows[r]] + out[rows[r]][:-1])
            if len(done) == len(rows):
                return
            if done:
                keep = torch.tensor([r for r in range(len(rows)) if r not in set(done)], device=self.device)
                for layer in cache.layers:
                    layer.batch_select_indices(keep)
                rows = [rows[r] for r in keep.tolist()]
                tokens, attention, positions = tokens[keep], attention[keep], positions[keep]
            input_ids = tokens[:, None]
            attention = torch.cat([attention, attention.new_ones(len(rows), 1)], dim=1)
            positions = positions[:, -1:] + 1

    def _pack(self, ids, reused):
        """One batch from prompts whose first n_i tokens may already be cached: per row
        cache = [pad][cached n_i] and input = [pad][the rest], with a mask and explicit positions."""
        n = [r[0] if r else 0 for r in reused]
        rest = [len(x) - k for x, k in zip(ids, n)]
        B, P, S = len(ids), max(n), max(rest)
        input_ids = torch.full((B, S), self.pad_id, dtype=torch.long)
        attention = torch.zeros(B, P + S, dtype=torch.long)
        positions = torch.zeros(B, S, dtype=torch.long)
        for i, (x, k, m) in enumerate(zip(ids, n, rest)):
            input_ids[i, S - m :] = torch.tensor(x[k:])
            attention[i, P - k : P] = 1
            attention[i, P + S - m :] = 1
            positions[i, S - m :] = torch.arange(k, k + m)
        cache = _roomy_cache(self.model.config)
        if P:
            first = next(r[1] for r in reused if r)
            for layer in range(len(first)):
                k0, v0 = first[layer]
                keys = k0.new_zeros(B, k0.shape[0], P, k0.shape[-1])
                values = v0.new_zeros(B, v0.shape[0], P, v0.shape[-1])
                for i, r in enumerate(reused):
                    if r:
                        keys[i, :, P - r[0] :] = r[1][layer][0]
                        values[i, :, P - r[0] :] = r[1][layer][1]
                        r[1][layer] = None  # freed once copied: the rows' caches and the batch's never both whole
                cache.layers[layer].update(keys, values)
        to = self.device
        return cache, input_ids.to(to), attention.to(to), positions.to(to)

    def _save(self, cache, attention, row, tokens):
        keep = attention[row].bool()
        kv = [(layer.keys[row][:, keep].clone(), layer.values[row][:, keep].clone()) for layer in cache.layers]
        assert kv[0][0].shape[1] == len(tokens), (kv[0][0].shape, len(tokens))
        self.cache.put(tuple(tokens), kv)

    def _candidates(self, stop: tuple[str, ...]) -> torch.Tensor:
        """A bool per vocabulary id: can this token complete one of the stop strings? (Skips most decodes.)"""
        if stop not in self._stop_candidates:
            if self._token_texts is None:
                self._token_texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            ends = {s[-1] for s in stop}
            flags = [any(c in text for c in ends) or "\ufffd" in text for text in self._token_texts]
            vocab = self.model.config.get_text_config(decoder=True).vocab_size
            flags += [False] * max(0, vocab - len(flags))
            self._stop_candidates[stop] = torch.tensor(flags, device=self.device)
        return self._stop_candidates[stop]


class _RoomyLayer(DynamicLayer):
    """A `DynamicLayer` that writes new keys and values into room kept after them, instead of concatenating: the
    concatenation copies a layer's whole cache at every decoded token, a sixth of a CPU decode step at 1-2k tokens
    of context (docs/performance.md). `keys`/`values` are views of the filled part."""

    ROOM = 256  # tokens of room added when full: a copy of the cache every 256 tokens instead of every token

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.room: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        old = self.get_seq_length()
        new = old + key_states.shape[-2]
        if self.room is None or new > self.room[0].shape[-2]:
            filled = (self.keys, self.values) if old else (key_states[..., :0, :], value_states[..., :0, :])
            more = new - old + self.ROOM
            self.room = tuple(torch.cat([x, x.new_empty(*x.shape[:-2], more, x.shape[-1])], dim=-2) for x in filled)
        self.room[0][..., old:new, :] = key_states
        self.room[1][..., old:new, :] = value_states
        self.keys, self.values = self.room[0][..., :new, :], self.room[1][..., :new, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.room is not None:
            length = self.get_seq_length()
            self.room = tuple(x[indices, ...] for x in self.room)
            self.keys, self.values = self.room[0][..., :length, :], self.room[1][..., :length, :]


def _roomy_cache(config) -> DynamicCache:
    """A `DynamicCache` for `config` whose full-attention layers are `_RoomyLayer`s (sliding-window ones unchanged)."""
    cache = DynamicCache(config=config)
    cache.layers = [_RoomyLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    if cache.layer_class_to_replicate is DynamicLayer:
        cache.layer_class_to_replicate = _RoomyLayer
    return cache


@contextmanager
def _head_as_matrix_vector(model):
    """Inside the block, the output layer of a model on a CPU computes `W @ x^T` instead of `x @ W^T`. Decoding
    multiplies a few rows by the whole output matrix at every token (49,152 x 576 for SmolLM2, a fifth of its
    weights); CPU BLAS streams that matrix 1.6-2.5x faster in this layout at 8-32 rows (docs/performance.md). The
    layer's weights and any logit post-processing of the model are unchanged: only the product's layout differs."""
    head = model.get_output_embeddings()
    plain = type(head) is nn.Linear and head.bias is None and "forward" not in vars(head)  # e.g. no accelerate hook
    if not plain or head.weight.device.type != "cpu":
        yield
        return

    def forward(x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        return torch.mm(head.weight, rows.t()).t().reshape(*x.shape[:-1], head.out_features)

    head.forward = forward
    try:
        yield
    finally:
        del head.forward


def _stop_hit(tail: str, stop: tuple[str, ...]) -> str | None:
    """The stop string that occurs in the tail (the one ending first), or None."""
    found = [(tail.find(s) + len(s), s) for s in stop if s in tail]
    return min(found)[1] if found else None


NUCLEUS_WIDTH = 1024  # candidates a top-p draw looks among first: a full-vocabulary sort per step costs more than
# the forward pass of a 135M model on a CPU (49k entries x batch), and the nucleus is almost always far smaller


def _sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits / temperature
    if top_p < 1.0:
        width = min(NUCLEUS_WIDTH, scaled.shape[-1])
        top, order = scaled.topk(width, dim=-1)  # sorted, most likely first
        probs = torch.exp(top - torch.logsumexp(scaled, dim=-1, keepdim=True))
        if width < scaled.shape[-1] and bool((probs.sum(dim=-1) < top_p).any()):
            # a row's nucleus reaches past the candidates: the exact nucleus needs the whole sorted vocabulary
            probs, order = torch.softmax(scaled, dim=-1).sort(dim=-1, descending=True)
        # keep the smallest set whose mass reaches top_p (the most likely token always stays)
        probs[(probs.cumsum(dim=-1) - probs) >= top_p] = 0.0
        picked = torch.multinomial(probs, 1, generator=gen)
        return order.gather(1, picked)[:, 0]
    return torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=gen)[:, 0]
