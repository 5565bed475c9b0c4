"""HFGenerator on tiny-random: real forward passes. Expectations come from unconstrained greedy runs and from a
full forward pass without any cache, so they hold for whatever the random weights say."""

import pytest
import torch

from zerosearch.generation import hf
from zerosearch.generation.hf import HFGenerator
from zerosearch.models import load_model

PROMPTS = ["Hello world, this is", "a", "The capital of France is a city called"]


@pytest.fixture(scope="module")
def gen():
    model, tok = load_model("tiny-random")
    return HFGenerator(model, tok)


def full_forward_logprobs(gen, prompt_ids, completion_ids):
    """Log-probs of the completion tokens from one plain forward pass over prompt + completion (no cache)."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = gen.model(input_ids=ids).logits[0].float()
    lp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    return lp.gather(1, torch.tensor(completion_ids)[:, None])[:, 0].tolist()


def test_batched_greedy_equals_one_by_one_and_logprobs_equal_a_full_forward(gen):
    batch = gen.generate(PROMPTS, max_new_tokens=12, temperature=0)
    for prompt, out in zip(PROMPTS, batch):
        alone = gen.generate([prompt], max_new_tokens=12, temperature=0)[0]
        assert out.token_ids == alone.token_ids and len(out.token_ids) == 12
        assert out.finish_reason == "length" and out.stop is None
        assert out.text == gen.tokenizer.decode(out.token_ids)
        expected = full_forward_logprobs(gen, gen.encode(prompt), out.token_ids)
        assert out.logprobs == pytest.approx(expected, abs=1e-4)


def test_a_cache_that_runs_out_of_room_and_drops_rows_still_equals_a_full_forward(gen, monkeypatch):
    monkeypatch.setattr(hf._RoomyLayer, "ROOM", 2)  # the cache grows every other token
    free = gen.generate(PROMPTS, max_new_tokens=12, temperature=0)
    eos = free[1].token_ids[3]
    monkeypatch.setattr(gen, "eos_ids", {eos})  # rows end at different steps: the cache drops them
    outs = gen.generate(PROMPTS, max_new_tokens=12, temperature=0)
    assert any(o.finish_reason == "eos" for o in outs) and any(o.finish_reason == "length" for o in outs)
    for prompt, f, out in zip(PROMPTS, free, outs):
        n = f.token_ids.index(eos) + 1 if eos in f.token_ids else 12
        assert out.token_ids == f.token_ids[:n]
        assert out.logprobs == pytest.approx(full_forward_logprobs(gen, gen.encode(prompt), out.token_ids), abs=1e-4)
    assert "forward" not in vars(gen.model.get_output_embeddings())  # decoding's layout change is undone


def test_token_id_prompts_equal_text_prompts(gen):
    ids = [gen.tokenizer(p).input_ids for p in PROMPTS]
    assert [c.token_ids for c in gen.generate(ids, max_new_tokens=6, temperature=0)] == [
        c.token_ids for c in gen.generate(PROMPTS, max_new_tokens=6, temperature=0)
    ]


def _first_prefix_containing(tokenizer, ids, s):
    for n in range(1, len(ids) + 1):
        if s in tokenizer.decode(ids[:n]):
            return ids[:n]
    raise AssertionError(f"{s!r} never occurs")


def test_stop_string_ends_that_sequence_right_after_the_completing_token(gen):
    tok = gen.tokenizer
    free = gen.generate(PROMPTS, max_new_tokens=16, temperature=0)
    # A stop string that spans a token boundary of row 0's output, from its 3rd and 4th tokens.
    third, fourth = tok.decode(free[0].token_ids[2:3]), tok.decode(free[0].token_ids[3:4])
    stop = third[-2:] + fourth[:2]
    assert len(stop) >= 3
    stopped = gen.generate(PROMPTS, max_new_tokens=16, temperature=0, stop=["NEVER-SEEN-zq", stop])
    for f, s in zip(free, stopped):
        if stop in tok.decode(f.token_ids):
            want = _first_prefix_containing(tok, f.token_ids, stop)
            assert s.token_ids == want and s.finish_reason == "stop" and s.stop == stop
            assert stop in s.text and stop not in tok.decode(want[:-1])
            assert s.logprobs == pytest.approx(f.logprobs[: len(want)], abs=1e-5)
        else:  # the other rows go on as if nobody had stopped
            assert s.token_ids == f.token_ids and s.finish_reason == "length"
    assert stopped[0].finish_reason == "stop" and len(stopped[0].token_ids) <= 4


def test_eos_ends_a_sequence(gen):
    free = gen.generate(PROMPTS[:1], max_new_tokens=10, temperature=0)[0]
    eos = free.token_ids[4]
    saved = gen.eos_ids
    gen.eos_ids = {eos}
    try:
        out = gen.generate(PROMPTS[:1], max_new_tokens=10, temperature=0)[0]
    finally:
        gen.eos_ids = saved
    n = free.token_ids.index(eos) + 1
    assert out.token_ids == free.token_ids[:n] and out.finish_reason == "eos"


def test_sampling_is_seeded_and_top_p_near_zero_is_greedy(gen):
    a = gen.generate(PROMPTS, max_new_tokens=10, temperature=1.0, seed=7)
    b = gen.generate(PROMPTS, max_new_tokens=10, temperature=1.0, seed=7)
    c = gen.generate(PROMPTS, max_new_tokens=10, temperature=1.0, seed=8)
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]
    greedy = gen.generate(PROMPTS, max_new_tokens=10, temperature=0)
    nucleus = gen.generate(PROMPTS, max_new_tokens=10, temperature=1.0, top_p=1e-9, seed=1)
    assert [x.token_ids for x in nucleus] == [x.token_ids for x in greedy]


def test_prefix_cache_reuses_kv_and_gives_the_same_result(gen):
    tok = gen.tokenizer
    obs = tok("\n\n<information>Doc 1: x</information>\n\n", add_special_tokens=False).input_ids
    with gen.prefix_cache() as cache:
        first = gen.generate(PROMPTS, max_new_tokens=8, temperature=0)
        second_prompts = [gen.encode(p) + c.token_ids + obs for p, c in zip(PROMPTS, first)]
        second = gen.generate(second_prompts, max_new_tokens=8, temperature=0)
        # every row found its earlier sequence (all but the last sampled token were cached)
        assert cache.hits == 3
        assert cache.reused_tokens == sum(len(gen.encode(p)) + 7 for p in PROMPTS)
    assert gen.cache is None  # the block's end drops it (weights may change after)
    fresh = gen.generate(second_prompts, max_new_tokens=8, temperature=0)
    for s, f in zip(second, fresh):
        assert s.token_ids == f.token_ids
        assert s.logprobs == pytest.approx(f.logprobs, abs=1e-4)


def test_empty_prompt_is_refused_and_zero_tokens_is_empty(gen):
    with pytest.raises(ValueError, match="empty prompt"):
        gen.generate([[]], max_new_tokens=3)
    out = gen.generate(["hi"], max_new_tokens=0)[0]
    assert out.token_ids == [] and out.text == ""


def test_banned_strings_are_never_spelled_and_bans_are_per_prompt(gen):
    free = gen.generate(PROMPTS, max_new_tokens=12, temperature=0)
    # Ban, for the first prompt only, the word its unconstrained greedy completion spells first.
    word = gen.tokenizer.decode(free[0].token_ids[:2]).strip()
    assert word
    banned = gen.generate(PROMPTS, max_new_tokens=12, temperature=0, banned=[[word], [], []])
    assert word not in banned[0].text
    assert banned[0].token_ids != free[0].token_ids
    assert [c.token_ids for c in banned[1:]] == [c.token_ids for c in free[1:]]


def test_bans_follow_their_prompt_after_other_rows_finish(gen):
    free = gen.generate(PROMPTS, max_new_tokens=10, temperature=0)
    short = gen.generate(PROMPTS[:1], max_new_tokens=2, temperature=0)[0]
    # Row 0 stops after 2 tokens (a stop string made of its own text); row 2 bans its own first word meanwhile.
    word = gen.tokenizer.decode(free[2].token_ids[:2]).strip()
    outs = gen.generate(PROMPTS, max_new_tokens=10, temperature=0, stop=[short.text], banned=[[], [], [word]])
    assert outs[0].finish_reason == "stop" and outs[1].token_ids == free[1].token_ids
    assert word not in outs[2].text
    with pytest.raises(ValueError, match="3 prompts"):
        gen.generate(PROMPTS, max_new_tokens=2, banned=[[word]])


# a flat row's nucleus past the candidates (the full sort), both nuclei inside them, candidates = the vocabulary
@pytest.mark.parametrize("width", [4, 8, 1024])
def test_top_p_draws_only_and_all_of_the_exact_nucleus(monkeypatch, width):
    monkeypatch.setattr(hf, "NUCLEUS_WIDTH", width)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.04, 0.01] + [0.0] * 95]) + 1e-12).repeat(2000, 1)
    logits[1000:] = torch.log(torch.tensor([0.2] * 5 + [0.0] * 95) + 1e-12)  # a flat row: 5 tokens to reach 0.9
    drawn = hf._sample(logits, 1.0, 0.9, torch.Generator().manual_seed(0))
    assert set(drawn[:1000].tolist()) == {0, 1, 2}  # 0.5 + 0.3 < 0.9 <= 0.5 + 0.3 + 0.15
    assert set(drawn[1000:].tolist()) == {0, 1, 2, 3, 4}
    share = (drawn[:1000] == 0).float().mean().item()
    assert abs(share - 0.5 / 0.95) < 0.05  # renormalized within the nucleus


def test_a_peft_model_decodes_like_its_base_with_the_cache_argument_its_base_names(gen):
    """A PEFT model's forward takes **kwargs: the cache goes under the name the wrapped model's forward uses (the
    other one is deprecated in transformers 5.x and will be removed), and LoRA adapters at zero change nothing."""
    import warnings

    from peft import LoraConfig, get_peft_model

    model, tok = load_model("tiny-random")
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        out = HFGenerator(wrapped, tok).generate(PROMPTS, max_new_tokens=6, temperature=0)
    assert [o.token_ids for o in out] == [o.token_ids for o in gen.generate(PROMPTS, max_new_tokens=6, temperature=0)]
