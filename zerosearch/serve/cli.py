"""`zerosearch serve`: any engine behind the HTTP search server (see docs/serving.md)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from zerosearch.options import ConfigOption, SetOption, load


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        engine: Annotated[
            Optional[str], typer.Option(help="bm25 | dense | simulator | web | remote | mixed (= engine.name)")
        ] = None,
        corpus: Annotated[
            Optional[str], typer.Option(help="corpus jsonl for bm25/dense, or mini-world:corpus (= engine.corpus)")
        ] = None,
        model: Annotated[Optional[str], typer.Option(help="simulator model spec (= engine.simulator_model)")] = None,
        prompt: Annotated[
            Optional[str], typer.Option(help="simulator prompt: sft | fewshot (= engine.simulator_prompt)")
        ] = None,
        host: Annotated[
            Optional[str],
            typer.Option(help="interface to bind (0.0.0.0 exposes the server to the network) (= serve.host)"),
        ] = None,
        port: Annotated[Optional[int], typer.Option(help="port (= serve.port)")] = None,
        token: Annotated[
            Optional[str],
            typer.Option(
                envvar="ZEROSEARCH_SERVER_TOKEN",
                help="require `Authorization: Bearer TOKEN` on every route but /health (a secret: not a config field)",
            ),
        ] = None,
        max_batch: Annotated[
            Optional[int], typer.Option(help="most queries in one engine call (= serve.max_batch)")
        ] = None,
        max_wait_ms: Annotated[
            Optional[float],
            typer.Option(
                help="extra wait for more requests before an engine call "
                "(0: batch what queued while the engine was busy) (= serve.max_wait_ms)"
            ),
        ] = None,
        max_queue: Annotated[
            Optional[int], typer.Option(help="queries waiting beyond this get 503 + Retry-After (= serve.max_queue)")
        ] = None,
        batch_timeout_s: Annotated[
            Optional[float],
            typer.Option(
                help="deadline of a batch, retries included; its requests then get 504 (0: none) "
                "(= serve.batch_timeout_s)"
            ),
        ] = None,
        max_queries: Annotated[
            Optional[int], typer.Option(help="most queries in one HTTP request (= serve.max_queries)")
        ] = None,
        max_query_chars: Annotated[
            Optional[int], typer.Option(help="longer queries are cut to this many characters (= serve.max_query_chars)")
        ] = None,
        max_k: Annotated[
            Optional[int], typer.Option(help="most documents a request may ask for (= serve.max_k)")
        ] = None,
        max_body_mb: Annotated[
            Optional[float], typer.Option(help="largest request body in MiB (= serve.max_body_mb)")
        ] = None,
        retrieve_topk: Annotated[
            Optional[int],
            typer.Option(
                help="/retrieve: documents when the request gives no topk (Search-R1's default: 3) "
                "(= serve.retrieve_topk)"
            ),
        ] = None,
        curriculum: Annotated[
            Optional[bool],
            typer.Option(
                help="draw useful/noisy per query with p of Eq. 1 (the recipe's curriculum section) when a request "
                "fixes no mode; the trainer reports its step with POST /curriculum (= serve.curriculum)"
            ),
        ] = None,
        steps: Annotated[
            Optional[int], typer.Option(help="--curriculum: training steps m (default: rl.steps) (= serve.steps)")
        ] = None,
        seed: Annotated[
            Optional[int], typer.Option(help="--curriculum: seed of the draws (default: seed) (= serve.seed)")
        ] = None,
        access_log: Annotated[Optional[bool], typer.Option(help="log every request (= serve.access_log)")] = None,
        config: ConfigOption = None,
        set_: SetOption = None,
    ):
        """Serve a search engine over HTTP: POST /search, POST /retrieve (Search-R1, verl), /curriculum, /health,
        /metrics."""
        import logging

        import uvicorn

        from zerosearch.engines import make_engine
        from zerosearch.serve.app import Curriculum, Limits, create_app

        flags = {"engine.name": engine or ("bm25" if corpus else None), "engine.corpus": corpus}
        flags |= {"engine.simulator_model": model, "engine.simulator_prompt": prompt}
        given = dict(
            host=host,
            port=port,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            batch_timeout_s=batch_timeout_s,
            max_queries=max_queries,
            max_query_chars=max_query_chars,
            max_k=max_k,
            max_body_mb=max_body_mb,
            retrieve_topk=retrieve_topk,
            curriculum=curriculum,
            steps=steps,
            seed=seed,
            access_log=access_log,
        )
        cfg = load(config, set_, flags | {f"serve.{k}": v for k, v in given.items()})
        s = cfg.serve
        # Limits and the curriculum are checked before the engine loads (a simulator can take minutes).
        limits = Limits(
            max_queries=s.max_queries,
            max_k=s.max_k,
            max_query_chars=s.max_query_chars,
            max_body_bytes=int(s.max_body_mb * (1 << 20)),
            default_k=cfg.engine.k,
            retrieve_default_k=s.retrieve_topk,
        )
        schedule = None
        if s.curriculum:
            c = cfg.curriculum
            seed = cfg.seed if s.seed is None else s.seed
            schedule = Curriculum(s.steps or cfg.rl.steps, c.schedule, c.p_start, c.p_end, c.base, seed)
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
            max_batch=s.max_batch,
            max_wait_ms=s.max_wait_ms,
            max_queue=s.max_queue,
            timeout_s=s.batch_timeout_s or None,
            limits=limits,
            curriculum=schedule,
        )
        host = s.host
        if host not in ("127.0.0.1", "localhost", "::1") and not token:
            typer.secho(
                f"warning: serving on {host} without --token: anyone who can reach it can query it",
                fg="yellow",
                err=True,
            )
        # Engine errors go to this log (with the id their 500 carries); httpx's INFO lines would name every URL.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        typer.echo(f"serving {cfg.engine.name} on http://{host}:{s.port}", err=True)
        uvicorn.run(app, host=host, port=s.port, log_level="info", access_log=s.access_log)

    @app.command("serve-model")
    def serve_model(
        model: Annotated[
            Optional[str], typer.Option(help="model spec, by default the simulator (= engine.simulator_model)")
        ] = None,
        quant: Annotated[str, typer.Option(help="GGUF weights: Q8_0 | F16 | F32")] = "Q8_0",
        host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port")] = 8001,
        threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores)")] = None,
        n_ctx: Annotated[int, typer.Option(help="context length in tokens")] = 4096,
        config: ConfigOption = None,
        set_: SetOption = None,
    ):
        """Serve a model (by default the search simulator) on llama.cpp's OpenAI-compatible server, exported to
        GGUF into the cache on first use. Train against it with --set engine.simulator_base_url=http://HOST:PORT
        (docs/serving.md)."""
        import uvicorn

        from zerosearch.serve.llamacpp import cached_gguf, server_app

        spec = load(config, set_, {"engine.simulator_model": model}).engine.simulator_model
        path = cached_gguf(spec, quant)
        url = f"http://{host}:{port}"
        typer.echo(f"serving {spec} ({path}) on {url}/v1; train with --set engine.simulator_base_url={url}", err=True)
        uvicorn.run(server_app(path, spec, n_ctx=n_ctx, threads=threads), host=host, port=port, log_level="warning")
