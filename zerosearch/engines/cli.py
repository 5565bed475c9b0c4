"""`zerosearch search`: one query against any engine, from the command line."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from zerosearch.options import ConfigOption, SetOption, load


def engine_config(config, set_, **flags):
    """The engine section of a recipe (`--config`), with `--set engine.x=...` and typed flags on top."""
    return load(config, set_, {f"engine.{k}": v for k, v in flags.items()}).engine


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        query: Annotated[str, typer.Argument(help="the search query")],
        engine: Annotated[
            Optional[str], typer.Option(help="bm25 | dense | simulator | web | remote | mixed (= engine.name)")
        ] = None,
        corpus: Annotated[
            Optional[str], typer.Option(help="corpus jsonl for bm25/dense, or mini-world:corpus (= engine.corpus)")
        ] = None,
        k: Annotated[Optional[int], typer.Option("-k", "--k", help="documents to return (= engine.k)")] = None,
        model: Annotated[
            Optional[str],
            typer.Option(help="simulator model spec (alias, hub id or local dir) (= engine.simulator_model)"),
        ] = None,
        prompt: Annotated[
            Optional[str], typer.Option(help="simulator prompt: sft | fewshot (= engine.simulator_prompt)")
        ] = None,
        question: Annotated[str, typer.Option(help="simulator: the question the searcher is trying to answer")] = "",
        answer: Annotated[Optional[list[str]], typer.Option(help="simulator: a gold answer (repeatable)")] = None,
        mode: Annotated[str, typer.Option(help="simulator: useful | noisy")] = "useful",
        url: Annotated[
            Optional[str], typer.Option(help="server URL(s) for remote, API base URL for web (= engine.urls)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the documents as a JSON list")] = False,
        config: ConfigOption = None,
        set_: SetOption = None,
    ):
        """Search once and print the documents (the simulator writes them from --question/--answer/--mode)."""
        from zerosearch.engines import make_engine
        from zerosearch.engines.base import SearchRequest
        from zerosearch.errors import UserError
        from zerosearch.prompts import format_documents

        if mode not in ("useful", "noisy"):
            raise UserError(f"--mode must be useful or noisy, got {mode!r}")
        if not query.strip():
            raise UserError("the query is empty")
        cfg = engine_config(
            config,
            set_,
            name=engine or ("bm25" if corpus else None),
            corpus=corpus,
            k=k,
            simulator_model=model,
            simulator_prompt=prompt,
            urls=url,
        )
        searcher = make_engine(cfg)
        docs = searcher.search(
            [SearchRequest(query=query, k=cfg.k, question=question or None, answers=answer or [], mode=mode)]
        )[0]
        if as_json:
            print(json.dumps([d.to_dict() for d in docs], ensure_ascii=False, indent=2))
        else:
            print(format_documents(docs))
        if hasattr(searcher, "well_formed"):
            typer.echo(f"{searcher.well_formed} of {len(docs)} documents well-formed", err=True)
