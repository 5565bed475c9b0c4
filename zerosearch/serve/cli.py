"""`zerosearch serve`: any engine behind the HTTP search server."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from zerosearch.options import ConfigOption, SetOption


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        engine: Annotated[Optional[str], typer.Option(help="bm25 | dense | simulator | web | remote | mixed")] = None,
        corpus: Annotated[Optional[str], typer.Option(help="corpus jsonl for bm25/dense, or mini-world:corpus")] = None,
        model: Annotated[Optional[str], typer.Option(help="simulator model spec")] = None,
        prompt: Annotated[Optional[str], typer.Option(help="simulator prompt: sft | fewshot")] = None,
        host: Annotated[
            str, typer.Option(help="interface to bind (0.0.0.0 exposes the server to the network)")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port")] = 8000,
        token: Annotated[
            Optional[str],
            typer.Option(
                envvar="ZEROSEARCH_SERVER_TOKEN",
                help="require `Authorization: Bearer TOKEN` on every route but /health",
            ),
        ] = None,
        max_batch: Annotated[int, typer.Option(help="most queries coalesced into one engine call")] = 64,
        max_wait_ms: Annotated[
            float,
            typer.Option(
                help="extra wait for more requests before an engine call (0: batch what queued while the engine was busy)"
            ),
        ] = 0.0,
        max_queue: Annotated[int, typer.Option(help="queries waiting beyond this get 503 + Retry-After")] = 4096,
        access_log: Annotated[bool, typer.Option(help="log every request")] = False,
        config: ConfigOption = None,
        set_: SetOption = None,
    ):
        """Serve a search engine over HTTP: POST /search, POST /retrieve (Search-R1), GET /health, GET /metrics."""
        import uvicorn

        from zerosearch.engines import make_engine
        from zerosearch.engines.cli import engine_config
        from zerosearch.errors import UserError
        from zerosearch.serve.app import Limits, create_app

        for name, value in (("--max-batch", max_batch), ("--max-queue", max_queue)):
            if value < 1:
                raise UserError(f"{name} must be >= 1, got {value}")
        if max_wait_ms < 0:
            raise UserError(f"--max-wait-ms must be >= 0, got {max_wait_ms}")
        cfg = engine_config(
            config,
            set_,
            name=engine or ("bm25" if corpus else None),
            corpus=corpus,
            simulator_model=model,
            simulator_prompt=prompt,
        )
        app = create_app(
            make_engine(cfg),
            token=token,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            limits=Limits(default_k=cfg.k),
        )
        if host not in ("127.0.0.1", "localhost", "::1") and not token:
            typer.secho(
                f"warning: serving on {host} without --token: anyone who can reach it can query it",
                fg="yellow",
                err=True,
            )
        typer.echo(f"serving {cfg.name} on http://{host}:{port}", err=True)
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)
