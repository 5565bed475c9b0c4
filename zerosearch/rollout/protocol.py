"""Parse one policy turn into an action (see docs/protocol.md): a search, an answer, or invalid.

The first complete action wins — the one whose closing tag comes first, which is where generation stopped —
and its content runs from the last opening tag of the same kind before that closing tag (so
`<search> a <search> b </search>` searches `b`). Linear time on any input: no backtracking regex.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("search", "answer")


@dataclass(frozen=True)
class Action:
    kind: str  # "search" | "answer" | "invalid"
    content: str = ""  # the query (stripped, capped) or the answer (stripped); "" when invalid


def _first_complete(text: str, kind: str) -> tuple[int, int] | None:
    """(content start, closing tag start) of the first complete `<kind>…</kind>`, or None."""
    open_tag, close_tag = f"<{kind}>", f"</{kind}>"
    first_open = text.find(open_tag)
    if first_open < 0:
        return None
    end = text.find(close_tag, first_open + len(open_tag))
    if end < 0:
        return None
    return text.rfind(open_tag, first_open, end) + len(open_tag), end


def parse_action(text: str, max_query_chars: int = 300) -> Action:
    found = {kind: span for kind in KINDS if (span := _first_complete(text, kind))}
    if not found:
        return Action("invalid")
    kind = min(found, key=lambda k: found[k][1])
    start, end = found[kind]
    content = text[start:end].strip()
    if kind == "search":
        content = content[:max_query_chars].strip()
        if not content:  # nothing to search for
            return Action("invalid")
    return Action(kind, content)
