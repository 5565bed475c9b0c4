from test_serve_app import Fragile, post_many

from zerosearch.serve.app import create_app, running_server


def test_concurrent_requests_are_coalesced_up_to_max_batch():
    engine = Fragile(delay=0.2)
    with running_server(create_app(engine, max_batch=6)) as url:
        queries = [f"q{i}" for i in range(16)]
        responses = post_many(url, queries)
    assert [r.json()["results"][0][0]["text"] for r in responses] == queries  # each client gets its own answer
    assert sum(engine.batches) == 16 and max(engine.batches) == 6 and len(engine.batches) < 16


def test_max_batch_one_calls_the_engine_per_request():
    engine = Fragile(delay=0.02)
    with running_server(create_app(engine, max_batch=1)) as url:
        post_many(url, [f"q{i}" for i in range(6)])
    assert engine.batches == [1] * 6
