"""Ask the agent a question and watch it think, search, read and answer, turn by turn, in the terminal.

It runs the real rollout machinery (`run_rollouts`, one question, greedy by default) with the generator and
the engine wrapped so that each policy turn and each search result is printed the moment it exists: what
you see is exactly what the policy does in training and evaluation, not a re-implementation of the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from zerosearch import prompts
from zerosearch.config import RolloutConfig
from zerosearch.data.formats import QAExample
from zerosearch.engines.base import SearchEngine, SearchRequest
from zerosearch.generation.base import Generator

STYLES = {"think": "dim italic", "search": "bold yellow", "answer": "bold green"}
_BLOCK_RE = re.compile(r"<(think|search|answer)>.*?(?:</\1>|$)", re.DOTALL)


def styled(text: str) -> Text:
    """Policy text with its <think>, <search> and <answer> blocks coloured (an unclosed block runs to the end)."""
    out, pos = Text(), 0
    for m in _BLOCK_RE.finditer(text):
        out.append(text[pos : m.start()])
        out.append(m.group(0), style=STYLES[m.group(1)])
        pos = m.end()
    out.append(text[pos:])
    return out


class EchoGenerator(Generator):
    """Delegates to a generator and prints every completion as it returns (one per turn for one question)."""

    def __init__(self, inner: Generator, console: Console):
        self.inner, self.console = inner, console
        self.tokenizer, self.name = inner.tokenizer, inner.name

    def __getattr__(self, name):  # back-end extras the rollout may use (e.g. a prefix cache)
        return getattr(self.inner, name)

    def generate(self, prompts_, **kw):
        completions = self.inner.generate(prompts_, **kw)
        for c in completions:
            self.console.print(styled(c.text))
        return completions


class EchoEngine(SearchEngine):
    """Delegates to an engine and prints the documents of every search."""

    def __init__(self, inner: SearchEngine, console: Console):
        super().__init__()
        self.inner, self.console = inner, console
        self.name, self.conditioned = inner.name, inner.conditioned

    def _search(self, requests: list[SearchRequest]) -> list:
        results = self.inner.search(requests)
        for request, docs in zip(requests, results):
            self.console.print(Text(f"[{self.name}: {request.query}]", style="bold cyan"))
            self.console.print(Text(prompts.format_documents(docs), style="cyan"))
        return results


def ask(
    question: str,
    generator: Generator,
    engine: SearchEngine,
    cfg: RolloutConfig,
    *,
    template=prompts.policy_prompt,
    greedy: bool = True,
    k: int = 5,
    golden_answers: Sequence[str] = (),
    console: Console | None = None,
):
    """Run one question through the rollout loop, printing as it goes; returns the Trajectory."""
    from zerosearch.rollout import run_rollouts

    console = console or Console()
    example = QAExample(id="chat", question=question, golden_answers=list(golden_answers))
    (trajectory,) = run_rollouts(
        EchoGenerator(generator, console),
        EchoEngine(engine, console),
        [example],
        cfg,
        p_noisy=0.0,
        seed=0,
        prompt_template=template,
        n=1,
        greedy=greedy,
        k=k,
    )
    answer = trajectory.answer if trajectory.answer is not None else "(no answer)"
    console.print(Text(f"Answer: {answer}", style="bold green"))
    console.print(
        Text(
            f"{trajectory.n_turns} turn(s), {len(trajectory.searches)} search(es), stop: {trajectory.stop_reason}",
            style="dim",
        )
    )
    return trajectory
