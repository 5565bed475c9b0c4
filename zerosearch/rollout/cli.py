"""`zerosearch rollout` (multi-turn search rollouts to jsonl) and `zerosearch view` (trajectories as HTML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from zerosearch.options import ConfigOption, SetOption, load


def register(app: typer.Typer) -> None:
    @app.command()
    def rollout(
        model: Annotated[
            Optional[str], typer.Option(help="policy model spec: alias, hub id or local dir (= model.spec)")
        ] = None,
        engine: Annotated[
            Optional[str], typer.Option(help="simulator | bm25 | dense | web | remote | mixed (= engine.name)")
        ] = None,
        data: Annotated[
            Optional[str], typer.Option(help="questions: a file, or mini-world:train|test (= rollouts.data)")
        ] = None,
        n: Annotated[Optional[int], typer.Option(help="questions to roll out (= rollouts.n)")] = None,
        samples: Annotated[Optional[int], typer.Option(help="trajectories per question (= rollouts.samples)")] = None,
        p_noisy: Annotated[
            Optional[float], typer.Option(help="probability that a search returns noisy documents (= rollouts.p_noisy)")
        ] = None,
        seed: Annotated[
            Optional[int],
            typer.Option(help="seed of sampling, question choice and useful/noisy draws (= rollouts.seed)"),
        ] = None,
        greedy: Annotated[
            Optional[bool], typer.Option(help="greedy decoding instead of rollout.temperature (= rollouts.greedy)")
        ] = None,
        out: Annotated[Optional[Path], typer.Option(help="trajectories jsonl (= rollouts.out)")] = None,
        config: ConfigOption = None,
        set_: SetOption = None,
    ):
        """Roll the policy out against a search engine and write the trajectories (token ids, loss masks, text)."""
        from zerosearch.data import load_questions
        from zerosearch.engines import make_engine
        from zerosearch.generation import make_generator
        from zerosearch.rollout import run_rollouts, write_jsonl

        flags = {"model.spec": model, "engine.name": engine, "rollouts.data": data, "rollouts.n": n}
        flags |= {"rollouts.samples": samples, "rollouts.p_noisy": p_noisy, "rollouts.seed": seed}
        cfg = load(config, set_, flags | {"rollouts.greedy": greedy, "rollouts.out": out and str(out)})
        r = cfg.rollouts
        seed, out = r.seed, Path(r.out)
        examples = load_questions(r.data, limit=r.n, seed=seed)
        policy = make_generator(cfg.model)
        # A simulator of the same spec shares the policy's weights instead of loading them twice.
        same = cfg.engine.simulator_model == cfg.model.spec and cfg.model.backend == "hf"
        searcher = make_engine(cfg.engine, generator=policy if same else None, seed=seed)
        trajectories = run_rollouts(
            policy,
            searcher,
            examples,
            cfg.rollout,
            p_noisy=r.p_noisy,
            seed=seed,
            n=r.samples,
            greedy=r.greedy,
            k=cfg.engine.k,
            reward=cfg.rl.reward,
            format_bonus=cfg.rl.format_reward,
        )
        write_jsonl(trajectories, out)
        reasons: dict[str, int] = {}
        for t in trajectories:
            reasons[t.stop_reason] = reasons.get(t.stop_reason, 0) + 1
        mean = sum(t.reward for t in trajectories) / len(trajectories)
        searches = sum(len(t.searches) for t in trajectories)
        typer.echo(
            f"{len(trajectories)} trajectories -> {out}: mean reward ({cfg.rl.reward}) {mean:.3f}, "
            f"{searches} searches, stop reasons {json.dumps(reasons)}"
        )

    @app.command()
    def view(
        trajectories: Annotated[Path, typer.Argument(help="a trajectories jsonl written by `zerosearch rollout`")],
        out: Annotated[Optional[Path], typer.Option(help="HTML file (default: next to the jsonl)")] = None,
        config: ConfigOption = None,
        set_: SetOption = None,
    ):
        """Write a self-contained HTML page showing every trajectory."""
        from zerosearch.errors import UserError
        from zerosearch.rollout.trajectory import read_jsonl
        from zerosearch.rollout.view import render_html

        load(config, set_)  # nothing to configure here, but a bad recipe or --set is still an error
        if not trajectories.is_file():
            raise UserError(f"no such file: {trajectories}")
        try:
            records = read_jsonl(trajectories)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise UserError(f"{trajectories}: not a trajectories jsonl ({type(e).__name__}: {e})") from None
        out = out or trajectories.with_suffix(".html")
        out.write_text(render_html(records, title=trajectories.name), encoding="utf-8")
        typer.echo(f"{len(records)} trajectories -> {out}")
