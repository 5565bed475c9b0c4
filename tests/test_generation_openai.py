"""OpenAIGenerator against a real OpenAI-compatible /v1/completions server on loopback, backed by HFGenerator on
tiny-random. Flavours: `vllm` (honours `include_stop_str_in_output` and `return_tokens_as_token_ids` as vLLM does:
without them the text is trimmed at the stop string and log-prob tokens are token texts; names the stop in
stop_reason), `sglang` (trims the stop string and names it in matched_stop, no token ids) and `bare` (trims it and
names nothing)."""

import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request

from zerosearch.errors import UserError
from zerosearch.generation.hf import HFGenerator
from zerosearch.generation.openai import GenerationError, OpenAIGenerator
from zerosearch.models import load_model

PROMPTS = ["Hello world, this is", "a", "The capital of France is a city called"]


def make_app(backend: HFGenerator, flavour: str, fail_first: int = 0) -> FastAPI:
    app = FastAPI()
    app.state.calls = 0
    app.state.bodies = []
    lock = threading.Lock()

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        with lock:
            app.state.calls += 1
            app.state.bodies.append(body)
            if app.state.calls <= fail_first:
                raise HTTPException(503, "warming up")
        if body.get("model") != "tiny":
            raise HTTPException(404, f"model {body.get('model')!r} not found")
        with lock:  # one generation at a time on the shared model
            c = backend.generate(
                [body["prompt"]],
                max_new_tokens=body["max_tokens"],
                stop=body.get("stop") or (),
                temperature=body["temperature"],
                top_p=body["top_p"],
                seed=body.get("seed"),
            )[0]
        choice = {
            "index": 0,
            "text": c.text,
            "finish_reason": "stop" if c.finish_reason in ("stop", "eos") else "length",
        }
        if flavour == "vllm":
            choice["stop_reason"] = c.stop
            if c.stop and not body.get("include_stop_str_in_output", False):
                choice["text"] = c.text[: c.text.index(c.stop)]  # the tokens stay: only the text is trimmed
            tokens = (
                [f"token_id:{t}" for t in c.token_ids]
                if body.get("return_tokens_as_token_ids", False)
                else [backend.tokenizer.decode([t]) for t in c.token_ids]
            )
            choice["logprobs"] = {"tokens": tokens, "token_logprobs": c.logprobs}
        elif c.stop:
            choice["text"] = c.text[: c.text.index(c.stop)]  # trimmed, as OpenAI's own API does
            if flavour == "sglang":
                choice["matched_stop"] = c.stop
        return {"id": "x", "object": "text_completion", "model": "tiny", "choices": [choice]}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def backend():
    model, tok = load_model("tiny-random")
    return HFGenerator(model, tok)


def serve(app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def servers(backend):
    apps = {f: make_app(backend, f) for f in ("vllm", "sglang", "bare")}
    running = {f: serve(app) for f, app in apps.items()}
    yield {f: url for f, (_, url) in running.items()}, apps
    for server, _ in running.values():
        server.should_exit = True


def test_vllm_flavour_returns_the_backends_tokens_logprobs_and_stop(servers, backend):
    urls, _ = servers
    client = OpenAIGenerator(urls["vllm"], "tiny", "tiny-random")
    local = [backend.generate([p], max_new_tokens=10, temperature=0)[0] for p in PROMPTS]
    stop = backend.tokenizer.decode(local[0].token_ids[2:4])  # occurs in row 0's output
    remote = client.generate(PROMPTS, max_new_tokens=10, temperature=0, stop=[stop])
    assert remote[0].finish_reason == "stop" and remote[0].stop == stop and remote[0].text.endswith(stop)
    for r, p in zip(remote, PROMPTS):
        want = backend.generate([p], max_new_tokens=10, temperature=0, stop=[stop])[0]
        assert r.token_ids == want.token_ids and r.text == want.text
        assert r.logprobs == pytest.approx(want.logprobs)


def test_the_client_asks_for_stop_strings_and_token_ids_which_the_vllm_flavour_honours(servers, backend):
    import httpx

    urls, apps = servers
    local = backend.generate(PROMPTS[:1], max_new_tokens=10, temperature=0)[0]
    stop = backend.tokenizer.decode(local.token_ids[2:4])
    want = backend.generate(PROMPTS[:1], max_new_tokens=10, temperature=0, stop=[stop])[0]
    out = OpenAIGenerator(urls["vllm"], "tiny", None).generate(
        PROMPTS[:1], max_new_tokens=10, temperature=0, stop=[stop]
    )[0]
    sent = apps["vllm"].state.bodies[-1]
    assert sent["include_stop_str_in_output"] is True and sent["return_tokens_as_token_ids"] is True
    # No tokenizer on the client: the ids can only come from the server's `token_id:N` tokens.
    assert out.token_ids == want.token_ids and out.text == want.text and out.logprobs == pytest.approx(want.logprobs)
    # The same request without the two flags, as a plain client would send it: vLLM's defaults.
    body = {**sent, "include_stop_str_in_output": False, "return_tokens_as_token_ids": False}
    plain = httpx.post(urls["vllm"] + "/v1/completions", json=body).json()["choices"][0]
    assert plain["text"] == want.text[: -len(stop)] and not plain["logprobs"]["tokens"][0].startswith("token_id:")


def test_a_trimmed_stop_string_is_put_back_and_the_text_tokenized(servers, backend):
    urls, _ = servers
    client = OpenAIGenerator(urls["sglang"], "tiny", "tiny-random")
    local = backend.generate(PROMPTS[:1], max_new_tokens=10, temperature=0)[0]
    stop = backend.tokenizer.decode(local.token_ids[2:4])
    out = client.generate(PROMPTS[:1], max_new_tokens=10, temperature=0, stop=[stop])[0]
    want = backend.generate(PROMPTS[:1], max_new_tokens=10, temperature=0, stop=[stop])[0]
    assert out.text == want.text and out.text.endswith(stop) and out.finish_reason == "stop"
    assert out.token_ids == backend.tokenizer(want.text, add_special_tokens=False).input_ids
    assert out.logprobs is None
    # A server that trims the stop string without naming it cannot be told from an end-of-sequence stop.
    bare = OpenAIGenerator(urls["bare"], "tiny", None).generate(
        PROMPTS[:1], max_new_tokens=10, temperature=0, stop=[stop]
    )[0]
    assert bare.text == want.text[: -len(stop)] and bare.finish_reason == "eos" and bare.token_ids == []


def test_token_id_prompts_and_per_prompt_seeds(servers, backend):
    urls, _ = servers
    client = OpenAIGenerator(urls["vllm"], "tiny", "tiny-random")
    ids = backend.tokenizer(PROMPTS[2]).input_ids
    a = client.generate([ids, ids], max_new_tokens=8, temperature=1.0, seed=3)
    b = client.generate([ids, ids], max_new_tokens=8, temperature=1.0, seed=3)
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert a[0].token_ids != a[1].token_ids  # a group of identical prompts gets different samples
    assert a[0].token_ids == backend.generate([ids], max_new_tokens=8, temperature=1.0, seed=3)[0].token_ids


def test_round_robin_over_several_urls_and_bounded_retries(backend):
    flaky = make_app(backend, "vllm", fail_first=2)
    steady = make_app(backend, "vllm")
    (s1, u1), (s2, u2) = serve(flaky), serve(steady)
    try:
        client = OpenAIGenerator(f"{u1},{u2}", "tiny", None, backoff_s=0.01, retries=3)
        out = client.generate(PROMPTS * 2, max_new_tokens=3, temperature=0)
        assert len(out) == 6 and all(len(c.token_ids) == 3 for c in out)
        assert flaky.state.calls >= 3 and steady.state.calls >= 3  # both served; the flaky one's 503s were retried
        with pytest.raises(GenerationError, match="404"):  # a client error is not retried
            OpenAIGenerator(u2, "nope", None, retries=5).generate(["x"], max_new_tokens=1)
    finally:
        s1.should_exit = s2.should_exit = True


def test_a_down_server_is_a_clear_user_error_after_bounded_retries():
    url = f"http://127.0.0.1:{free_port()}"
    client = OpenAIGenerator(url, "tiny", None, retries=2, backoff_s=0.01, timeout_s=2)
    with pytest.raises(UserError, match="after 3 tries"):
        client.generate(["x"], max_new_tokens=1)
    with pytest.raises(UserError, match="base URL"):
        OpenAIGenerator(" , ", "tiny")


def test_a_rollout_through_the_http_backend_builds_masks_from_token_ids(servers, backend):
    from test_rollout_masks import RecordingEngine, check_invariants

    from zerosearch.config import RolloutConfig
    from zerosearch.data.formats import QAExample
    from zerosearch.rollout import run_rollouts

    urls, _ = servers
    client = OpenAIGenerator(urls["vllm"], "tiny", "tiny-random")
    cfg = RolloutConfig(max_turns=2, max_turn_tokens=5)
    examples = [QAExample("a", "Where is Paris", ["France"])]
    remote = run_rollouts(client, RecordingEngine(), examples, cfg, greedy=True)
    local = run_rollouts(backend, RecordingEngine(), examples, cfg, greedy=True)
    for t in remote:
        check_invariants(t)
    assert [t.response_ids for t in remote] == [t.response_ids for t in local]
    assert remote[0].logprobs == pytest.approx(local[0].logprobs, abs=1e-4)
