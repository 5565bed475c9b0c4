"""`zerosearch serve`: any engine behind the HTTP search server (see docs/serving.md)."""

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
        max_batch: Annotated[int, typer.Option(help="most queries in one engine call")] = 64,
        max_wait_ms: Annotated[
            float,
            typer.Option(
                help="extra wait for more requests before an engine call "
                "(0: batch what queued while the engine was busy)"
            ),
        ] = 0.0,
        max_queue: Annotated[int, typer.Option(help="queries waiting beyond this get 503 + Retry-After")] = 16384,
        batch_timeout_s: Annotated[
            float, typer.Option(help="deadline of a batch, retries included; its requests then get 504 (0: none)")
        ] = 600.0,
        max_queries: Annotated[int, typer.Option(help="most queries in one HTTP request")] = 4096,
        max_query_chars: Annotated[int, typer.Option(help="longer queries are cut to this many characters")] = 4096,
        max_k: Annotated[int, typer.Option(help="most documents a request may ask for")] = 100,
        max_body_mb: Annotated[float, typer.Option(help="largest request body in MiB")] = 16.0,
        retrieve_topk: Annotated[
            int, typer.Option(help="/retrieve: documents when the request gives no topk (Search-R1's default: 3)")
        ] = 3,
        curriculum: Annotated[
            bool,
            typer.Option(
                help="draw useful/noisy per query with p of Eq. 1 (the recipe's curriculum section) when a request "
                "fixes no mode; the trainer reports its step with POST /curriculum"
            ),
        ] = False,
        steps: Annotated[Optional[int], typer.Option(help="--curriculum: training steps m (default: rl.steps)")] = None,
        seed: Annotated[Optional[int], typer.Option(help="--curriculum: seed of the draws (default: seed)")] = None,
        access_log: Annotated[bool, typer.Option(help="log every request")] = False,
        config: ConfigOption = None,
        set_: SetOption = None,
    ):
        """Serve a search engine over HTTP: POST /search, POST /retrieve (Search-R1, verl), /curriculum, /health,
        /metrics."""
        import logging

        import uvicorn

        from zerosearch.config import TrainConfig, load_config
        from zerosearch.engines import make_engine
        from zerosearch.errors import UserError
        from zerosearch.serve.app import Curriculum, Limits, create_app

        for name, value in (("--max-batch", max_batch), ("--max-queue", max_queue), ("--steps", steps)):
            if value is not None and value < 1:
                raise UserError(f"{name} must be >= 1, got {value}")
        for name, value in (("--max-wait-ms", max_wait_ms), ("--batch-timeout-s", batch_timeout_s)):
            if value < 0:
                raise UserError(f"{name} must be >= 0, got {value}")
        if max_body_mb <= 0:
            raise UserError(f"--max-body-mb must be > 0, got {max_body_mb}")
        flags = {"name": engine or ("bm25" if corpus else None), "corpus": corpus}
        flags |= {"simulator_model": model, "simulator_prompt": prompt}
        cfg = load_config(TrainConfig, config, set_, {f"engine.{k}": v for k, v in flags.items()})
        # Limits and the curriculum are checked before the engine loads (a simulator can take minutes).
        limits = Limits(
            max_queries=max_queries,
            max_k=max_k,
            max_query_chars=max_query_chars,
            max_body_bytes=int(max_body_mb * (1 << 20)),
            default_k=cfg.engine.k,
            retrieve_default_k=retrieve_topk,
        )
        schedule = None
        if curriculum:
            c = cfg.curriculum
            schedule = Curriculum(
                steps or cfg.rl.steps, c.schedule, c.p_start, c.p_end, c.base, cfg.seed if seed is None else seed
            )
        elif steps is not None or seed is not None:
            raise UserError("--steps and --seed set the server's curriculum: add --curriculum")
        searcher = make_engine(cfg.engine)
        if schedule and not searcher.conditioned:
            typer.secho(
                f"warning: --curriculum with the {cfg.engine.name} engine, which ignores useful/noisy",
                fg="yellow",
                err=True,
            )
        app = create_app(
            searcher,
            token=token,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            timeout_s=batch_timeout_s or None,
            limits=limits,
            curriculum=schedule,
        )
        if host not in ("127.0.0.1", "localhost", "::1") and not token:
            typer.secho(
                f"warning: serving on {host} without --token: anyone who can reach it can query it",
                fg="yellow",
                err=True,
            )
        # Engine errors go to this log (with the id their 500 carries); httpx's INFO lines would name every URL.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        typer.echo(f"serving {cfg.engine.name} on http://{host}:{port}", err=True)
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)
