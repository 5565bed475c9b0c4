"""A model in llama.cpp's format (GGUF), for serving it with llama.cpp's OpenAI-compatible server.

The bundled `smollm2-135m` package already ships llama-cpp-python (its server included), and for one request at a
time llama.cpp decodes a 135M model on a CPU about 3x faster than our transformers loop (batches of requests are
faster in-process: llama-cpp-python's server decodes them one after the other; docs/performance.md). What it
cannot read is our safetensors: a fine-tuned simulator (`mini-world:simulator`) or a trained policy.
`export_gguf` writes one without llama.cpp's converter script (which pip does not install): the tokenizer and chat
template come from the bundled SmolLM2 GGUF, the hyper-parameters from the model's config, the weights from the
model itself. So it serves any Llama-architecture model with SmolLM2's tokenizer (every model this project builds
from the embedded default); other models: llama.cpp's `convert_hf_to_gguf.py`, or vLLM.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from zerosearch.config import cache_dir
from zerosearch.errors import UserError

QUANTS = ("F32", "F16", "Q8_0")  # Q8_0: half the bytes of F16 per weight read (its report card: docs/performance.md)
TOKENIZER_KEYS = "tokenizer."  # copied from the bundled GGUF; every other key is written from the model's config


def _permute(weight, n_head: int):
    """llama.cpp's rotary layout of a q/k projection (its converter's `permute`; transformers undoes it on load)."""
    pairs = weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
    return pairs.swapaxes(1, 2).reshape(weight.shape)


def _template():
    import gguf

    from zerosearch.models import BUNDLED

    return gguf.GGUFReader(BUNDLED["smollm2-135m"]())


def _check(model, tokenizer, template) -> None:
    cfg = model.config
    if cfg.model_type != "llama":
        raise UserError(
            f"export to GGUF handles Llama-architecture models with SmolLM2's tokenizer; this one is {cfg.model_type!r}"
            " (use llama.cpp's convert_hf_to_gguf.py, or serve it with vLLM)"
        )
    field = template.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    if tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))) != tokens:
        raise UserError("export to GGUF needs SmolLM2's tokenizer (the one the bundled GGUF carries); this one differs")
    if (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default") != "default":
        raise UserError("export to GGUF: rope scaling is not supported (use llama.cpp's convert_hf_to_gguf.py)")


def export_gguf(model, tokenizer, path: Path, quant: str = "Q8_0") -> Path:
    """Write `model` (a transformers Llama with SmolLM2's tokenizer) as a GGUF file at `path`."""
    import gguf
    import numpy as np

    if quant not in QUANTS:
        raise UserError(f"GGUF quantization must be one of {', '.join(QUANTS)}, got {quant!r}")
    template = _template()
    _check(model, tokenizer, template)
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rope = getattr(cfg, "rope_parameters", None) or {}
    tmp = Path(path).with_suffix(".part")  # renamed when complete: an interrupted export leaves no broken file
    writer = gguf.GGUFWriter(tmp, "llama")
    writer.add_name(Path(str(cfg.name_or_path)).name or "zerosearch-export")
    writer.add_file_type(getattr(gguf.LlamaFileType, "MOSTLY_" + quant, gguf.LlamaFileType.ALL_F32))
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    for name, field in template.fields.items():
        if name.startswith(TOKENIZER_KEYS):
            kind = field.types[0]
            sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(name, field.contents(), kind, sub_type=sub)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    state = model.state_dict()
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # llama.cpp reuses token_embd when output.weight is absent
    for hf_name, tensor in state.items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"export to GGUF: no llama.cpp name for the weight {hf_name!r}")
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, cfg.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, cfg.num_key_value_heads)
        kind = gguf.GGMLQuantizationType[quant] if data.ndim == 2 else gguf.GGMLQuantizationType.F32
        if kind == gguf.GGMLQuantizationType.Q8_0 and data.shape[1] % 32:
            kind = gguf.GGMLQuantizationType.F16  # Q8_0 packs rows in blocks of 32
        writer.add_tensor(name, gguf.quants.quantize(np.ascontiguousarray(data), kind), raw_dtype=kind)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.rename(path)
    return Path(path)


def cached_gguf(spec: str, quant: str = "Q8_0") -> Path:
    """The GGUF copy of a model spec, exported into the cache on first use (keyed by the weights' identity)."""
    from zerosearch.models import load_model, model_identity

    key = hashlib.sha256(f"{model_identity(spec)}|{quant}".encode()).hexdigest()[:12]
    path = cache_dir() / "gguf" / f"{Path(spec).name.replace(':', '-')}-{quant}-{key}.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        model, tokenizer = load_model(spec, device="cpu")
        export_gguf(model, tokenizer, path, quant)
    return path


def server_app(gguf_path: Path, alias: str, n_ctx: int = 4096, threads: int | None = None):
    """llama-cpp-python's OpenAI-compatible app (`/v1/completions`, `/v1/chat/completions`) over one GGUF file.

    Without the logits of every prompt position (`logits_all`), which only log-probs need: clients send none
    (the simulator engine asks for none). One request decodes at a time; a batch of queries is served in turn.
    """
    import os

    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    threads = threads or os.cpu_count() or 1
    model = ModelSettings(
        model=str(gguf_path),
        model_alias=alias,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=False,
        verbose=False,
    )
    return create_app(server_settings=ServerSettings(), model_settings=[model])
