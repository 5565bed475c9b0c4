"""The search simulator: an LLM writes the documents (prompts in docs/protocol.md, caching in docs/engines.md).

`sft` is the exact prompt of the released `Simulation_LLM_*_V2` checkpoints, applied as the single user
message of the chat template with an empty system message; `fewshot` is our prompt for any instruct model.
Each request is rendered with its own question, answers and mode, so a batch can never misalign them (the
reference implementation does when some trajectories issue no query in a turn).

Sampling is seeded: call n of the engine uses seed `seed + 1_000_003 n` (and the back-end gives each prompt of a call
its own stream), so that the samples of a group that send the same query get different documents, and a
resumed run that restores `state_dict()` samples as the uninterrupted one.
Departure (opt-in, `ban_answers`): a noisy request's completion cannot spell a gold answer, because a small
simulator otherwise leaks the answer it is told into the documents meant to mislead (docs/simulator.md).
"""

from __future__ import annotations

import re
import threading

from zerosearch import prompts
from zerosearch.engines.base import Document, EngineError, SearchEngine, SearchRequest
from zerosearch.generation.base import Generator, chat_prompt
from zerosearch.generation.openai import GenerationError
from zerosearch.rewards import contains_answer

# Redraws of a noisy completion that leaks an answer, where the back-end cannot ban it (a leak rate p becomes p^5).
RESAMPLES = 4

# A document marker at the start of a line: `Doc 1:`, `Document 2 (Title: x)`, `**Doc 3**`, `1.`, `2)`,
# `[3]`, `(4)`, `Passage 5 -`. One or two digits, so that a line opening with a year is not a marker.
_MARKER = re.compile(
    r"^[ \t>*#_-]*"
    r"(?:(?:doc(?:ument)?|passage|result)\s*#?\s*(\d{1,2})|\[(\d{1,2})\]|\((\d{1,2})\)|(\d{1,2})\s*[.):])[*_]*",
    re.IGNORECASE | re.MULTILINE,
)
_TITLE = re.compile(r"^\s*\((?:title:\s*)?([^()\n]*)\)", re.IGNORECASE)
_SEPARATOR = re.compile(r"^[\s:.\-–—*_|]+")
_INLINE_TITLE = re.compile(r"^title:\s*(.+?)\s*(?:\n|$)", re.IGNORECASE)


def _document(chunk: str) -> Document | None:
    """One marker's text: an optional `(Title: t)`, then the first paragraph (later ones are run-on text)."""
    title = None
    match = _TITLE.match(chunk)
    if match:
        title, chunk = match.group(1).strip() or None, chunk[match.end() :]
    chunk = _SEPARATOR.sub("", chunk, count=1)
    match = _INLINE_TITLE.match(chunk)
    if match and not title:
        title, chunk = match.group(1).strip(), chunk[match.end() :]
    text = " ".join(re.split(r"\n\s*\n", chunk.strip(), maxsplit=1)[0].split())
    return Document(text=text, title=title) if text else None


def parse_documents(text: str, k: int = 5) -> tuple[list[Document], int]:
    """Split a simulator's output into exactly `k` documents; never raises.

    Returns the documents and how many were well-formed: those come first; the rest are empty placeholders
    padding a short output. Without any numbering, blank-line-separated paragraphs (or else lines) are the
    documents.
    """
    text = text if isinstance(text, str) else ""
    markers = list(_MARKER.finditer(text))
    if markers:
        bounds = [m.end() for m in markers] + [len(text)]
        chunks = [
            text[bounds[i] : markers[i + 1].start() if i + 1 < len(markers) else len(text)] for i in range(len(markers))
        ]
    else:
        chunks = re.split(r"\n\s*\n", text.strip())
        if len(chunks) == 1:
            chunks = text.strip().splitlines()
    docs = [d for d in map(_document, chunks) if d is not None][: max(k, 0)]
    n_well_formed = len(docs)
    docs += [Document(text="") for _ in range(max(k, 0) - n_well_formed)]
    return docs, n_well_formed


def banned_strings(request: SearchRequest) -> list[str]:
    """What a noisy document must not spell: each gold answer as given, lower-cased and title-cased, also without
    a leading article (the leak rate compares answers without one)."""
    if request.mode != "noisy":
        return []
    answers = {a.strip() for a in request.answers if a.strip()}
    answers |= {m.group(1) for a in answers if (m := re.match(r"(?:the|a|an)\s+(.+)", a, re.IGNORECASE))}
    return sorted({v for a in answers for v in (a, a.lower(), a.title())})


class SimulatorEngine(SearchEngine):
    name = "simulator"
    conditioned = True

    def __init__(
        self,
        generator: Generator,
        prompt: str = "sft",
        max_new_tokens: int = 256,
        *,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = 0,
        model_id: str | None = None,
        ban_answers: bool = False,
    ):
        """`model_id` identifies the generator's weights (`models.model_identity`) for cache keys; None means
        they may change (the policy's, in training): such a simulator is never cached.

        `ban_answers`: a noisy request's completion cannot spell a gold answer. The simulator is told the answer so
        that it can write useful documents; a small one then writes it into noisy ones too, which would hand the
        policy the answer in exactly the searches meant to mislead it (docs/simulator.md). In-process the decoding
        bans it (`banned_strings`); a server cannot, so a noisy completion that holds an answer is drawn again, up
        to `RESAMPLES` times (sampled decoding only), and the last draw is kept."""
        super().__init__()
        if prompt not in ("sft", "fewshot"):
            raise ValueError(f"simulator prompt must be 'sft' or 'fewshot', got {prompt!r}")
        self.generator, self.prompt, self.max_new_tokens = generator, prompt, max_new_tokens
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.model_id, self.cacheable = model_id, model_id is not None
        self.ban_answers = ban_answers and getattr(generator, "supports_banned", False)
        self.resample_leaks = ban_answers and not self.ban_answers and temperature > 0
        self.calls = 0
        # The few-shot prompt ends in `Query:`/`Output:` lines; a model that carries on writes a new example.
        self.stop = ("\nQuery:",) if prompt == "fewshot" else ()
        self.documents = 0  # documents returned, and how many of them were well-formed (the format rate)
        self.well_formed = 0
        self._lock = threading.Lock()

    def identity(self) -> str:
        ban = ":ban" if self.ban_answers else ":resample" if self.resample_leaks else ""
        return (
            f"simulator:{self.model_id}:{self.prompt}:{self.max_new_tokens}:{self.temperature}:{self.top_p}:{self.seed}"
            f"{ban}"
        )

    def state_dict(self) -> dict:
        with self._lock:
            return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        with self._lock:
            self.calls = int(state.get("calls", 0))

    def render(self, request: SearchRequest) -> str:
        """The full prompt text of one request (chat template applied where the model has one)."""
        if self.prompt == "sft":
            user = prompts.simulator_sft_prompt(request.query, request.question or "", request.answers, request.mode)
            return chat_prompt(self.generator.tokenizer, user, system="")
        user = prompts.simulator_fewshot_prompt(request.query, request.question or "", request.answers, request.mode)
        return chat_prompt(self.generator.tokenizer, user)

    def _count_tokens(self, texts: list[str]) -> int:
        encode = getattr(self.generator, "encode", None)  # the generator's own encoding (BOS handling included)
        if encode is not None:
            return sum(len(encode(t)) for t in texts)
        tokenizer = self.generator.tokenizer
        return sum(len(ids) for ids in tokenizer(texts)["input_ids"]) if tokenizer is not None else 0

    def _generate(self, requests: list[SearchRequest], texts: list[str], seed: int | None) -> list:
        try:
            completions = self.generator.generate(
                texts,
                max_new_tokens=self.max_new_tokens,
                stop=self.stop,
                temperature=self.temperature,
                top_p=self.top_p,
                seed=seed,
                **({"banned": [banned_strings(r) for r in requests]} if self.ban_answers else {}),
            )
        except GenerationError as e:  # the simulator's server is down: a failed search, as for any engine
            raise EngineError(f"simulator: {e}") from None
        self.meter.add_tokens(self._count_tokens(texts), sum(len(c.token_ids) for c in completions))
        return completions

    def _search(self, requests: list[SearchRequest]) -> list[list[Document]]:
        texts = [self.render(r) for r in requests]
        with self._lock:
            call, self.calls = self.calls, self.calls + 1
        seed = None if self.seed is None else self.seed + 1_000_003 * call
        completions = self._generate(requests, texts, seed)
        for attempt in range(1, RESAMPLES + 1 if self.resample_leaks else 1):
            again = [
                i
                for i, (r, c) in enumerate(zip(requests, completions))
                if r.mode == "noisy" and contains_answer(c.text, r.answers)
            ]
            if not again:
                break
            redrawn = self._generate(
                [requests[i] for i in again], [texts[i] for i in again], None if seed is None else seed + 7919 * attempt
            )
            for i, c in zip(again, redrawn):
                completions[i] = c
        results = []
        for request, completion in zip(requests, completions, strict=True):
            text = completion.text.split(completion.stop, 1)[0] if completion.stop else completion.text
            docs, n_ok = parse_documents(text, request.k)
            with self._lock:
                self.documents += len(docs)
                self.well_formed += n_ok
            results.append(docs)
        return results
