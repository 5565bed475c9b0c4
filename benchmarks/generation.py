"""Tokens/s of the transformers back-end (HFGenerator) on smollm2-135m, batch 1 and 8, fp32 and bf16, greedy,
128 new tokens, side by side with `model.generate` on the same prompts; and first load (GGUF -> safetensors)
vs cached load seconds.

    python benchmarks/generation.py [--new-tokens 128] [--repeats 2] [--skip-load]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from zerosearch.generation.base import chat_prompt
from zerosearch.generation.hf import HFGenerator
from zerosearch.models import load_model

QUESTIONS = [
    "What is the capital of France?",
    "Who wrote Hamlet?",
    "Why is the sky blue?",
    "How do vaccines work?",
    "What is photosynthesis?",
    "Name three prime numbers.",
    "What causes tides?",
    "Who painted the Mona Lisa?",
]


def load_seconds() -> tuple[float, float]:
    """(first load, converting the bundled GGUF into an empty cache; cached load) in seconds."""
    saved = os.environ.get("ZEROSEARCH_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ZEROSEARCH_CACHE"] = tmp
        try:
            start = time.perf_counter()
            load_model("smollm2-135m", device="cpu")
            first = time.perf_counter() - start
            start = time.perf_counter()
            load_model("smollm2-135m", device="cpu")
            cached = time.perf_counter() - start
        finally:
            if saved is None:
                os.environ.pop("ZEROSEARCH_CACHE")
            else:
                os.environ["ZEROSEARCH_CACHE"] = saved
    return first, cached


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'}")
    if not args.skip_load:
        first, cached = load_seconds()
        print(
            f"load smollm2-135m: first (GGUF -> safetensors) {first:.1f} s, "
            f"cached {cached:.1f} s ({first / cached:.1f}x)"
        )
    n = args.new_tokens
    print(f"greedy, {n} new tokens (EOS ignored so every row makes {n})")
    print(f"{'dtype':>5} {'batch':>5} {'HFGenerator tok/s':>18} {'model.generate tok/s':>21} {'ratio':>6}")
    for dtype in ("fp32", "bf16"):
        model, tok = load_model("smollm2-135m", dtype=dtype)
        gen = HFGenerator(model, tok)
        gen.eos_ids = set()
        for batch in (1, 8):
            texts = [chat_prompt(tok, q) for q in QUESTIONS[:batch]]
            ours = best_of(
                args.repeats, lambda gen=gen, texts=texts: gen.generate(texts, max_new_tokens=n, temperature=0)
            )
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            theirs = best_of(
                args.repeats,
                lambda model=model, enc=enc, tok=tok: model.generate(
                    **enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id
                ),
            )
            print(f"{dtype:>5} {batch:>5} {batch * n / ours:>18.1f} {batch * n / theirs:>21.1f} {theirs / ours:>5.2f}x")


if __name__ == "__main__":
    main()
