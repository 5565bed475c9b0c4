"""A self-contained HTML page of trajectories: policy and environment text in different colours, each
observation marked with its search's useful/noisy draw, the answer, the gold answers and the reward."""

from __future__ import annotations

from collections import Counter
from html import escape

from zerosearch import prompts
from zerosearch.rollout.trajectory import Trajectory

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
.traj { border: 1px solid #ccc; border-radius: 6px; margin: 1.2em 0; padding: 0.8em 1em; }
.meta { color: #555; margin: 0.3em 0; }
.text { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 13px; background: #fafafa;
        padding: 0.6em; border-radius: 4px; }
.policy { color: #0b3d91; }
.env { color: #666; background: #eef3e8; }
.invalid { color: #8a4b00; background: #fff1de; }
.badge { font: bold 11px sans-serif; padding: 1px 6px; border-radius: 8px; margin-right: 4px; color: white; }
.useful { background: #2e7d32; } .noisy { background: #c62828; } .real { background: #546e7a; }
.good { color: #2e7d32; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
.legend span { margin-right: 1em; }
"""


def _trajectory(i: int, t: Trajectory) -> str:
    searches = iter(t.searches)
    parts = []
    for s in t.segments:
        if s.role == "policy":
            parts.append(
                f'<span class="policy" title="policy: {s.n_tokens} tokens (in the loss)">{escape(s.text)}</span>'
            )
        elif s.text.startswith(prompts.OBSERVATION_OPEN):
            search = next(searches, None)
            badge = f'<span class="badge {escape(search.mode)}">{escape(search.mode)}</span>' if search else ""
            parts.append(
                f'{badge}<span class="env" title="environment: {s.n_tokens} tokens (masked)">{escape(s.text)}</span>'
            )
        else:
            parts.append(
                f'<span class="env invalid" title="invalid-action message: {s.n_tokens} tokens">{escape(s.text)}</span>'
            )
    verdict = "good" if t.em else "bad"
    golds = ", ".join(escape(g) for g in t.golden_answers)
    modes = Counter(s.mode for s in t.searches)
    search_list = "".join(
        f'<li><span class="badge {escape(s.mode)}">{escape(s.mode)}</span>{escape(s.query)}'
        f"<details><summary>{len(s.documents)} documents</summary><ol>"
        + "".join(
            f"<li><b>{escape(str(d.get('title') or ''))}</b> {escape(str(d.get('text', '')))}</li>" for d in s.documents
        )
        + "</ol></details></li>"
        for s in t.searches
    )
    answer = escape(t.answer) if t.answer is not None else "(none)"
    return (
        f'<div class="traj" id="t{i}"><h3>#{i} {escape(t.id)} — {escape(t.question)}</h3>'
        f'<div class="meta">answer: <span class="{verdict}">{answer}</span>'
        f" · gold: {golds} · reward {t.reward:.3f} · EM {t.em:.0f} · {t.n_turns} turns · stop: {escape(t.stop_reason)}"
        f" · {len(t.response_ids)} response tokens, {sum(t.loss_mask)} in the loss"
        f" · searches: {len(t.searches)} ({', '.join(f'{escape(k)} {v}' for k, v in modes.items()) or 'none'})</div>"
        f'<div class="text">{"".join(parts)}</div>' + (f"<ol>{search_list}</ol>" if t.searches else "") + "</div>"
    )


def render_html(trajectories: list[Trajectory], title: str = "trajectories") -> str:
    n = len(trajectories)
    mean = sum(t.reward for t in trajectories) / n if n else 0.0
    em = sum(t.em for t in trajectories) / n if n else 0.0
    reasons = Counter(t.stop_reason for t in trajectories)
    summary = f"{n} trajectories · mean reward {mean:.3f} · EM {em:.3f} · stop reasons: " + ", ".join(
        f"{escape(k)} {v}" for k, v in reasons.most_common()
    )
    legend = (
        '<div class="legend"><span class="policy">policy text (in the loss)</span>'
        '<span class="env">environment text (masked)</span><span class="env invalid">invalid-action message</span>'
        '<span class="badge useful">useful</span><span class="badge noisy">noisy</span></div>'
    )
    body = "".join(_trajectory(i, t) for i, t in enumerate(trajectories))
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title><style>{STYLE}</style></head>'
        f"<body><h1>{escape(title)}</h1><p>{summary}</p>{legend}{body}</body></html>"
    )
