"""Plain dataclass configs: defaults in code, recipes in `zerosearch/recipes/*.yaml`, overrides from the command line.

One mechanism for every command: `--config FILE` loads a YAML recipe and `--set section.field=value`
(repeatable) overrides any field; a command's typed flags are shorthands for the same overrides.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zerosearch.errors import ConfigError

RECIPES = Path(__file__).parent / "recipes"  # package data: present in wheels and non-editable installs


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def cache_dir() -> Path:
    """Where converted models, built datasets and indexes live (`ZEROSEARCH_CACHE` overrides)."""
    path = Path(os.environ.get("ZEROSEARCH_CACHE", Path.home() / ".cache" / "zerosearch")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _help(text: str, default: Any = dataclasses.MISSING, **kw) -> Any:
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda d=default: dataclasses.replace(d), metadata={"help": text}, **kw)
    return field(default=default, metadata={"help": text}, **kw)


def _one_of(section: str, name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{section}.{name} must be one of {list(choices)}, got {value!r}")


def _positive(section: str, obj: Any, *names: str, zero_ok: bool = False) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is None or (value < 0 if zero_ok else value <= 0):
            raise ConfigError(f"{section}.{name} must be {'>= 0' if zero_ok else '> 0'}, got {value!r}")


def _probability(section: str, obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{section}.{name} must be in [0, 1], got {value!r}")


@dataclass
class ModelConfig:
    spec: str = _help(
        "hub id, local directory, or bundled alias (smollm2-135m, gemma3-270m, tiny-random)", "smollm2-135m"
    )
    dtype: str = _help("fp32 | bf16 | fp16", "fp32")
    backend: str = _help(
        "hf (in-process transformers) | openai (an OpenAI-compatible server: vLLM, SGLang, llama.cpp)", "hf"
    )
    base_url: str = _help("OpenAI-compatible server URL(s), comma-separated, for backend=openai", "")
    api_model: str = _help("model name the server knows, for backend=openai (default: spec)", "")

    def __post_init__(self):
        _one_of("model", "dtype", self.dtype, ("fp32", "bf16", "fp16"))
        _one_of("model", "backend", self.backend, ("hf", "openai"))
        if self.backend == "openai" and not self.base_url:
            raise ConfigError("model.base_url is required when model.backend=openai")


@dataclass
class EngineConfig:
    name: str = _help("simulator | bm25 | dense | web | remote | mixed", "simulator")
    k: int = _help("documents per search", 5)
    corpus: str = _help("corpus jsonl for bm25/dense (or mini-world:corpus)", "mini-world:corpus")
    simulator_model: str = _help("model spec of the simulator", "smollm2-135m")
    simulator_prompt: str = _help(
        "sft (the exact prompt of the released simulators) | fewshot (any instruct model)", "fewshot"
    )
    simulator_max_tokens: int = _help("completion tokens per simulator call (the reference: 600)", 256)
    simulator_temperature: float = _help(
        "simulator sampling temperature, seeded (0 = greedy; the reference samples at 0.8)", 0.8
    )
    simulator_top_p: float = _help("simulator nucleus sampling (the reference: 1.0)", 1.0)
    simulator_base_url: str = _help(
        "OpenAI-compatible server(s) serving simulator_model (vLLM, SGLang), comma-separated; empty = in-process", ""
    )
    simulator_dtype: str = _help(
        "fp32 | bf16 | fp16: the in-process simulator's weights (bf16 on a CPU with AVX-512 BF16 or AMX: about 2x "
        "the documents/s of fp32, the same report card; docs/performance.md)",
        "fp32",
    )
    simulator_ban_answers: bool = _help(
        "noisy mode: the in-process simulator cannot spell a gold answer (decoding-time ban, a departure from the "
        "paper; docs/simulator.md)",
        False,
    )
    embedding_model: str = _help("sentence-transformers model for dense retrieval", "all-minilm-l6-v2")
    index_path: str = _help(
        "dense: a prebuilt faiss index of the corpus, row i = line i (e.g. Search-R1's e5_Flat.index over "
        "wiki-18.jsonl); empty = build one into the cache directory",
        "",
    )
    query_prefix: str = _help("dense: text put before each query (E5 models: 'query: ')", "")
    passage_prefix: str = _help("dense: text put before each passage when building an index (E5: 'passage: ')", "")
    pooling: str = _help(
        "dense: the model's own pooling (empty) | mean | cls (mean for E5 loaded as a plain transformer)", ""
    )
    urls: str = _help("server URL(s), comma-separated, for remote/web engines", "")
    web_provider: str = _help("serper | serpapi, for the web engine", "serper")
    cache: str = _help("off | read-write | replay-only", "off")
    cache_path: str = _help("sqlite file of the engine cache (default: in the cache directory)", "")
    real_engine: str = _help(
        "engine that mixed routes to with probability p_real (bm25 | dense | web | remote)", "bm25"
    )
    p_real: float = _help("mixed: probability that a call goes to the real engine", 0.0)
    token_env: str = _help(
        "remote: name of the environment variable that holds the server's bearer token (the token is never logged)",
        "",
    )
    remote_conditioned: bool = _help(
        "remote (/search servers): results depend on mode, question and answers (a simulator behind the server), "
        "so the cache keys on them; false only when a real retriever is behind it. /retrieve URLs never are",
        True,
    )
    timeout_s: float = _help("HTTP timeout for remote/web engines", 30.0)
    retries: int = _help("bounded retries for remote/web engines", 3)

    def __post_init__(self):
        _one_of("engine", "name", self.name, ("simulator", "bm25", "dense", "web", "remote", "mixed"))
        _one_of("engine", "simulator_prompt", self.simulator_prompt, ("sft", "fewshot"))
        _one_of("engine", "simulator_dtype", self.simulator_dtype, ("fp32", "bf16", "fp16"))
        _one_of("engine", "cache", self.cache, ("off", "read-write", "replay-only"))
        _one_of("engine", "pooling", self.pooling, ("", "mean", "cls"))
        _positive("engine", self, "k", "simulator_max_tokens", "timeout_s")
        _positive("engine", self, "simulator_temperature", zero_ok=True)
        if not 0.0 < self.simulator_top_p <= 1.0:
            raise ConfigError(f"engine.simulator_top_p must be in (0, 1], got {self.simulator_top_p!r}")
        _positive("engine", self, "retries", zero_ok=True)
        _probability("engine", self, "p_real")


@dataclass
class RolloutConfig:
    max_turns: int = _help(
        "turns that may search; one answer-only turn follows (as in the reference: 2 = two searches and an answer, "
        "0 = answer without searching)",
        5,
    )
    max_turn_tokens: int = _help("new tokens per policy turn", 500)
    max_obs_tokens: int = _help("observation (environment) tokens per trajectory", 2048)
    max_context_tokens: int = _help("prompt + response tokens per trajectory", 4096)
    max_query_chars: int = _help("a search query is cut to this many characters", 300)
    temperature: float = _help("sampling temperature (0 = greedy)", 1.0)
    top_p: float = _help("nucleus sampling", 0.95)
    search_retries: int = _help(
        "retries of a failed search before its trajectory ends with stop reason search_error (the run goes on)", 2
    )

    def __post_init__(self):
        _positive("rollout", self, "max_turn_tokens", "max_obs_tokens", "max_context_tokens", "max_query_chars")
        _positive("rollout", self, "max_turns", "search_retries", zero_ok=True)  # max_turns 0: answer only
        _positive("rollout", self, "temperature", zero_ok=True)
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"rollout.top_p must be in (0, 1], got {self.top_p!r}")


@dataclass
class CurriculumConfig:
    schedule: str = _help(
        "exponential (Eq. 1) | linear | constant (the paper's Random ablation, p = p_end)", "exponential"
    )
    p_start: float = _help("noise probability at step 0 (p_s)", 0.0)
    p_end: float = _help("noise probability at the last step (p_e)", 0.5)
    base: float = _help("b of Eq. 1", 4.0)

    def __post_init__(self):
        _one_of("curriculum", "schedule", self.schedule, ("exponential", "linear", "constant"))
        _probability("curriculum", self, "p_start", "p_end")
        _positive("curriculum", self, "base")


@dataclass
class RLConfig:
    algo: str = _help("an algorithm of the registry in zerosearch/rl/algos.py (the trainer checks the name)", "grpo")
    steps: int = _help("training steps (m of Eq. 1)", 203)
    prompts_per_step: int = _help("questions per step (divisible by the number of processes)", 64)
    samples_per_prompt: int = _help("rollouts per question (the GRPO group size)", 5)
    lr: float = _help("policy learning rate", 1e-6)
    value_lr: float = _help("value-head learning rate (ppo)", 1e-5)
    warmup_ratio: float = _help("linear learning-rate warm-up over this share of the steps (verl's ratio)", 0.0)
    value_warmup_ratio: float = _help("the value head's warm-up ratio (ppo)", 0.0)
    epochs: int = _help("passes of clipped updates over each step's rollouts", 1)
    micro_batch: int = _help(
        "trajectories per forward/backward (divides mini_batch; the same gradient for any value: 1 pads nothing, the "
        "fastest and smallest on a CPU)",
        4,
    )
    mini_batch: int = _help(
        "trajectories per optimizer step, divides prompts_per_step x samples_per_prompt "
        "(0 = all of a step's trajectories: one update per epoch)",
        0,
    )
    mixed_precision: str = _help("auto (bf16 where the GPU supports it, else fp32) | no | bf16 | fp16", "auto")
    clip: float = _help("PPO clip range", 0.2)
    dual_clip: float = _help("dual-clip constant c (> 1), 0 disables", 0.0)
    value_clip: float = _help("PPO value clip around the values before the update (verl's cliprange_value)", 0.5)
    kl_coef: float = _help("coefficient of the KL-to-reference penalty added to the loss", 0.001)
    kl_estimator: str = _help("k1 | k2 | k3 (= low_var_kl, verl's clamped k3)", "k3")
    entropy_coef: float = _help("entropy bonus", 0.0)
    loss_agg: str = _help("token-mean | seq-mean-token-sum | seq-mean-token-mean", "token-mean")
    norm_adv_by_std: bool = _help("GRPO: divide group-centred rewards by the group std", True)
    gamma: float = _help("discount (ppo, reinforce_pp), in [0, 1]", 1.0)
    lam: float = _help("PPO GAE lambda, in [0, 1]", 1.0)
    max_grad_norm: float = _help("gradient-norm clip, of the policy and separately of the value head (0 = off)", 1.0)
    reward: str = _help("f1 | em | cover_em", "f1")
    format_reward: float = _help("bonus for a well-formed final answer (0 = off, as in the paper)", 0.0)
    lora_r: int = _help("LoRA rank; 0 = full fine-tuning", 0)
    lora_alpha: int = _help("LoRA alpha", 32)
    train_layers: int = _help(
        "full fine-tuning of the top N transformer blocks only, embeddings frozen (0 = all): a cheaper CPU update", 0
    )
    gradient_checkpointing: bool = _help(
        "recompute each block's activations in the update's backward pass: less memory, about a third more update time",
        False,
    )
    offload_reference: bool = _help(
        "full fine-tuning with KL: keep the frozen reference on disk between steps, read back for each step's "
        "reference log-probs (one model's weights less at the update's peak, a read of its weights per step)",
        False,
    )

    def __post_init__(self):
        _one_of("rl", "kl_estimator", self.kl_estimator, ("k1", "k2", "k3", "low_var_kl"))
        _one_of("rl", "loss_agg", self.loss_agg, ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean"))
        _one_of("rl", "reward", self.reward, ("f1", "em", "cover_em"))
        _one_of("rl", "mixed_precision", self.mixed_precision, ("auto", "no", "bf16", "fp16"))
        _positive("rl", self, "mini_batch", zero_ok=True)
        _positive("rl", self, "steps", "prompts_per_step", "samples_per_prompt", "lr", "epochs", "micro_batch", "clip")
        _positive("rl", self, "kl_coef", "entropy_coef", "lora_r", "max_grad_norm", "value_clip", zero_ok=True)
        _positive("rl", self, "train_layers", zero_ok=True)
        if self.lora_r and self.train_layers:
            raise ConfigError("rl.train_layers and rl.lora_r are alternatives: set one of them")
        _probability("rl", self, "warmup_ratio", "value_warmup_ratio", "gamma", "lam")
        if self.dual_clip and self.dual_clip <= 1:
            raise ConfigError(f"rl.dual_clip must be > 1 (or 0 to disable), got {self.dual_clip!r}")
        batch = self.prompts_per_step * self.samples_per_prompt
        if self.mini_batch and batch % self.mini_batch:
            raise ConfigError(
                f"rl.mini_batch ({self.mini_batch}) must divide rl.prompts_per_step x rl.samples_per_prompt ({batch})"
            )
        if self.mini_batch and self.mini_batch % self.micro_batch:
            raise ConfigError(f"rl.micro_batch ({self.micro_batch}) must divide rl.mini_batch ({self.mini_batch})")


# --- the other stages' sections: every command loads the root config (TrainConfig) and reads its own section; a
# command's typed flags are shorthands for these fields (see docs/configuration.md). -------------------------------


@dataclass
class GenerateConfig:
    """`zerosearch generate` (the model is model.spec)."""

    max_new_tokens: int = _help("tokens to generate", 128)
    temperature: float = _help("0 = greedy", 0.0)
    raw: bool = _help("do not apply the chat template", False)

    def __post_init__(self):
        _positive("generate", self, "max_new_tokens")
        _positive("generate", self, "temperature", zero_ok=True)


@dataclass
class WorldConfig:
    """`zerosearch data build`: the mini-world."""

    size: str = _help("small | medium | large", "small")
    seed: int = _help("world seed: same seed, same files byte for byte", 0)
    out: str = _help("output directory (empty = the cache, where mini-world:* specs look)", "")


@dataclass
class PrepareConfig:
    """`zerosearch data prepare`: the paper's datasets as ZeroSearch/Search-R1 parquet."""

    source: str = _help("a FlashRAG folder (NAME/train.jsonl, NAME/test.jsonl, …) or `hub` (needs internet)", "hub")
    out: str = _help("output directory for train.parquet and test.parquet", "data")
    train: str = _help(
        "datasets whose train split makes train.parquet, comma list (the paper: nq,hotpotqa)", "nq,hotpotqa"
    )


@dataclass
class EvalConfig:
    """`zerosearch eval` (the model, engine and rollout sections drive the methods)."""

    methods: str = _help("direct | cot | rag | agent | policy, comma list", "policy")
    policy_model: str = _help("trained checkpoint for the policy method (empty = model.spec)", "")
    data: str = _help("questions: a parquet/jsonl/csv file or mini-world:test", "mini-world:test")
    data_source: str | None = _help("keep only this data_source (e.g. nq) of a multi-dataset file", None)
    limit: int | None = _help("at most this many questions (seeded sub-sample)", None)
    seed: int = _help("seed of sub-sampling and of the bootstrap", 0)
    out: str = _help("results directory; a rerun into it resumes (questions already done are skipped)", "runs/eval")
    batch_size: int = _help("questions per generation batch", 16)
    n_boot: int = _help("bootstrap resamples for the CIs", 1000)
    allow_oracle: bool = _help(
        "allow the simulator as the engine, although it is given the gold answers (results labelled ORACLE)", False
    )

    def __post_init__(self):
        _positive("eval", self, "batch_size", "n_boot")
        if self.limit is not None:
            _positive("eval", self, "limit")


@dataclass
class CompareConfig:
    """`zerosearch eval compare A B`."""

    method: str = _help("method to read from a results directory holding several (empty = its only one)", "")
    n_boot: int = _help("bootstrap resamples", 1000)
    seed: int = _help("bootstrap seed", 0)

    def __post_init__(self):
        _positive("compare", self, "n_boot")


@dataclass
class CostConfig:
    """`zerosearch cost`: search API cost vs simulator GPU cost."""

    searches: int | None = _help("number of searches (empty = the run's count)", None)
    gpu_hours: float | None = _help("hours the simulator's GPUs are held (empty = the run's wall time)", None)
    gpus: int = _help("GPUs serving the simulator", 1)
    gpu_price: float | None = _help("$ per GPU-hour (empty = the paper's A100 rate)", None)
    api_price: float | None = _help("search API $ per 1k queries (empty = SerpAPI-like, the paper's rate)", None)
    paper: bool = _help("reproduce the paper's Table 8 arithmetic from its inputs", False)

    def __post_init__(self):
        if self.paper and (self.searches is not None or self.gpu_hours is not None):
            raise ConfigError("cost.paper uses the paper's inputs: leave cost.searches and cost.gpu_hours unset")


@dataclass
class ChatConfig:
    """`zerosearch chat` (the model, engine and rollout sections drive the agent)."""

    prompt: str = _help("policy (the trained protocol) | agent (the prompted baseline)", "policy")
    temperature: float = _help("0 = greedy", 0.0)

    def __post_init__(self):
        _one_of("chat", "prompt", self.prompt, ("policy", "agent"))
        _positive("chat", self, "temperature", zero_ok=True)


@dataclass
class RolloutsConfig:
    """`zerosearch rollout`: trajectories to jsonl (limits and sampling: the rollout section)."""

    data: str = _help("questions: a file, or mini-world:train|test", "mini-world:test")
    n: int = _help("questions to roll out", 8)
    samples: int = _help("trajectories per question", 1)
    p_noisy: float = _help("probability that a search returns noisy documents", 0.0)
    seed: int = _help("seed of sampling, question choice and useful/noisy draws", 0)
    greedy: bool = _help("greedy decoding instead of rollout.temperature", False)
    out: str = _help("trajectories jsonl", "trajectories.jsonl")

    def __post_init__(self):
        _positive("rollouts", self, "n", "samples")
        _probability("rollouts", self, "p_noisy")


@dataclass
class WarmstartConfig:
    """`zerosearch warmstart`: SFT on oracle search demonstrations before RL (the model is model.spec)."""

    out: str = _help("new directory for the warm-started model", "runs/warm")
    examples: int = _help("oracle demonstrations (mini-world train, rejection-sampled on BM25)", 64)
    steps: int = _help("SFT steps", 30)
    lr: float = _help("SFT learning rate", 5e-5)
    batch_size: int = _help("demonstrations per SFT step", 8)
    micro_batch: int = _help(
        "demonstrations per forward/backward (the same gradient for any value; 1 pads nothing: the fastest and "
        "smallest on a CPU, raise it on a GPU)",
        1,
    )
    gradient_checkpointing: bool = _help(
        "recompute each block's activations in the backward pass instead of keeping them: less memory, more time, "
        "the same gradient",
        False,
    )

    def __post_init__(self):
        _positive("warmstart", self, "examples", "steps", "lr", "batch_size", "micro_batch")


@dataclass
class DemoConfig:
    """`zerosearch demo`, sized for minutes on 2 CPU cores (plus the simulator's one-time build): a 135M model's
    forward+backward over a ~500-token trajectory costs seconds on a CPU, so every stage is small. Its RL steps use
    `prompts_per_step` questions (instead of the recipe's rl.prompts_per_step) for `steps` steps (instead of
    rl.steps); the warm start is the warmstart section's."""

    out: str = _help("where the demo writes its run, evaluations and plots", "runs/demo")
    steps: int = _help("RL steps (replaces rl.steps)", 3)
    n_eval: int = _help("held-out questions evaluated before and after", 50)
    prompts_per_step: int = _help("questions per RL step (replaces rl.prompts_per_step)", 2)
    warm_start: bool = _help("warm start (the warmstart section) before RL; false: RL from model.spec", True)

    def __post_init__(self):
        _positive("demo", self, "steps", "n_eval", "prompts_per_step")


@dataclass
class ServeConfig:
    """`zerosearch serve`: the HTTP search server (the engine is the engine section; see docs/serving.md). The bearer
    token is not a field: a secret does not belong in a recipe (`--token` or ZEROSEARCH_SERVER_TOKEN)."""

    host: str = _help("interface to bind (0.0.0.0 exposes the server to the network)", "127.0.0.1")
    port: int = _help("port", 8000)
    max_batch: int = _help("most queries in one engine call", 64)
    max_wait_ms: float = _help(
        "extra wait for more requests before an engine call (0: batch what queued while the engine was busy)", 0.0
    )
    max_queue: int = _help("queries waiting beyond this get 503 + Retry-After", 16384)
    batch_timeout_s: float = _help("deadline of a batch, retries included; its requests then get 504 (0: none)", 600.0)
    max_queries: int = _help("most queries in one HTTP request", 4096)
    max_query_chars: int = _help("longer queries are cut to this many characters", 4096)
    max_k: int = _help("most documents a request may ask for", 100)
    max_body_mb: float = _help("largest request body in MiB", 16.0)
    retrieve_topk: int = _help("/retrieve: documents when the request gives no topk (Search-R1's default: 3)", 3)
    curriculum: bool = _help(
        "draw useful/noisy per query with p of Eq. 1 (the curriculum section) when a request fixes no mode; the "
        "trainer reports its step with POST /curriculum",
        False,
    )
    steps: int | None = _help("serve.curriculum: training steps m (empty = rl.steps)", None)
    seed: int | None = _help("serve.curriculum: seed of the draws (empty = seed)", None)
    access_log: bool = _help("log every request", False)

    def __post_init__(self):
        _positive("serve", self, "max_batch", "max_queue", "max_body_mb")
        _positive("serve", self, "max_wait_ms", "batch_timeout_s", zero_ok=True)
        if self.steps is not None:
            _positive("serve", self, "steps")
        if not self.curriculum and (self.steps is not None or self.seed is not None):
            raise ConfigError("serve.steps and serve.seed set the server's curriculum: add --curriculum")


@dataclass
class CollectConfig:
    """`zerosearch sft collect`: an agent (and/or oracle queries) against a REAL engine."""

    out: str = _help(
        "append-only interactions jsonl (a rerun skips questions already in it)", "runs/sft/interactions.jsonl"
    )
    data: str = _help("training questions: a file, or mini-world:train", "mini-world:train")
    engine: str = _help("the REAL engine: bm25 | dense | web | remote", "bm25")
    corpus: str = _help("corpus for bm25/dense", "mini-world:corpus")
    urls: str = _help("server URL(s) for remote/web", "")
    queries: str = _help("agent (the paper's way) | oracle (the question and its hop sub-questions) | both", "both")
    model: str = _help("the agent model (any instruct model)", "smollm2-135m")
    base_url: str = _help("OpenAI-compatible server serving the agent model (empty = in-process)", "")
    prompt: str = _help("agent prompt: agent (ReAct-like) | policy (Search-R1)", "agent")
    samples: int = _help("trajectories per question", 2)
    max_turns: int = _help("agent search turns per trajectory, then one answer turn", 3)
    max_turn_tokens: int = _help("new tokens per agent turn", 128)
    temperature: float = _help("agent sampling temperature", 1.0)
    k: int = _help("documents per search", 5)
    limit: int | None = _help("first N questions only", None)
    batch_size: int = _help("questions per batch (one append per batch)", 8)
    seed: int = _help("sampling seed", 0)

    def __post_init__(self):
        if self.engine not in ("bm25", "dense", "web", "remote"):
            raise ConfigError(
                f"collect.engine must be a real engine (bm25, dense, web, remote), got {self.engine!r}: "
                "the SFT data must be real"
            )
        _one_of("collect", "queries", self.queries, ("agent", "oracle", "both"))
        _one_of("collect", "prompt", self.prompt, ("agent", "policy"))
        _positive("collect", self, "samples", "batch_size", "max_turn_tokens", "k")
        _positive("collect", self, "max_turns", "temperature", zero_ok=True)
        if self.limit is not None:
            _positive("collect", self, "limit")


@dataclass
class JudgeConfig:
    """`zerosearch sft judge`: label each interaction's documents useful or noisy."""

    input: str = _help("interactions jsonl from `sft collect`", "runs/sft/interactions.jsonl")
    out: str = _help("labelled interactions jsonl", "runs/sft/judged.jsonl")
    judges: str = _help("rule | llm, comma list: the first labels, a second is compared (Cohen's kappa)", "rule")
    model: str = _help("the LLM judge's model", "smollm2-135m")
    base_url: str = _help("OpenAI-compatible server serving the judge model (empty = in-process)", "")
    batch_size: int = _help("LLM judge prompts per batch", 8)
    limit: int | None = _help("first N interactions only", None)

    def __post_init__(self):
        names = self.judge_names
        if not names or len(set(names)) != len(names) or set(names) - {"rule", "llm"}:
            raise ConfigError(f"judge.judges takes distinct values among rule, llm; got {self.judges!r}")
        _positive("judge", self, "batch_size")

    @property
    def judge_names(self) -> list[str]:
        return [j.strip() for j in self.judges.split(",") if j.strip()]


@dataclass
class BuildConfig:
    """`zerosearch sft build`: the SFT chat pairs, balanced, deduplicated, split."""

    input: str = _help("labelled interactions from `sft judge`", "runs/sft/judged.jsonl")
    out: str = _help("directory for train.jsonl, validation.jsonl, stats.json", "runs/sft/data")
    k: int = _help("documents per example", 5)
    max_doc_words: int = _help("words kept per document", 40)
    balance: float = _help("cap the majority mode at this multiple of the minority (0 = off)", 1.0)
    val_fraction: float = _help("fraction of questions held out for validation (and `sft grade`)", 0.1)
    seed: int = _help("seed of balancing and the split", 0)

    def __post_init__(self):
        _positive("build", self, "k", "max_doc_words")
        _positive("build", self, "balance", zero_ok=True)
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"build.val_fraction must be in [0, 1), got {self.val_fraction!r}")


@dataclass
class GradeConfig:
    """`zerosearch sft grade`: the simulators' report card."""

    simulators: str = _help(
        "MODEL[:sft|fewshot], comma list, e.g. smollm2-135m:fewshot,runs/sft/model:sft (required)", ""
    )
    data: str = _help("held-out examples: `sft build`'s directory or its validation.jsonl", "runs/sft/data")
    out: str = _help("directory for report.md and report.json", "runs/sft/grade")
    limit: int | None = _help("first N held-out queries", None)
    k: int = _help("documents per output", 5)
    max_new_tokens: int = _help("tokens per simulator output", 256)
    batch_size: int = _help("requests per generation batch", 8)
    temperature: float = _help("simulator sampling temperature (0 = greedy; grade with what training uses)", 0.0)
    top_p: float = _help("simulator nucleus sampling", 1.0)
    seed: int = _help("sampling seed", 0)
    base_url: str = _help("OpenAI-compatible server for every simulator (empty = in-process)", "")
    ban_answers: bool = _help(
        "noisy outputs with the gold answers banned (grade as training decodes: engine.simulator_ban_answers)", False
    )

    def __post_init__(self):
        _positive("grade", self, "k", "max_new_tokens", "batch_size")
        _positive("grade", self, "temperature", zero_ok=True)
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"grade.top_p must be in (0, 1], got {self.top_p!r}")


@dataclass
class TrainConfig:
    model: ModelConfig = _help("the policy", ModelConfig())
    engine: EngineConfig = _help("the training search engine", EngineConfig())
    rollout: RolloutConfig = _help("multi-turn rollout limits and sampling", RolloutConfig())
    curriculum: CurriculumConfig = _help("noisy-document schedule", CurriculumConfig())
    rl: RLConfig = _help("algorithm and optimisation", RLConfig())
    data: str = _help("training questions (a file, or mini-world:train|pool)", "mini-world:train")
    eval_data: str = _help("held-out questions for before/after evaluation", "mini-world:test")
    out: str = _help("run directory", "runs/train")
    seed: int = _help("seed of sampling, curriculum draws and data order", 0)
    save_every: int = _help("checkpoint every N steps", 1)
    keep_checkpoints: int = _help("checkpoints kept on disk", 2)
    log_tensorboard: bool = _help("also log to TensorBoard", False)
    log_wandb: bool = _help("also log to Weights & Biases", False)
    progress: bool = _help("show a progress bar", True)
    save_trajectories: bool = _help("write each step's trajectories to RUN/trajectories/", True)
    simulator_shares_policy: bool = _help(
        "simulator = the policy's own weights (saves memory; default: a separate model)", False
    )
    on_collapse: str = _help("stop | rollback (to the last checkpoint, with a lower lr) | off", "stop")
    rollback_lr_factor: float = _help("learning-rate multiplier applied at each rollback", 0.5)
    max_rollbacks: int = _help("rollbacks before the run stops", 3)
    collapse_window: int = _help("steps over which reward/entropy collapse is judged", 5)
    collapse_ratio: float = _help("reward collapse: windowed mean reward < ratio x its best", 0.2)
    min_entropy: float = _help("entropy collapse: windowed entropy below this", 0.01)
    # The other stages' sections: one recipe configures every command (see docs/configuration.md).
    generate: GenerateConfig = _help("`zerosearch generate`", GenerateConfig())
    world: WorldConfig = _help("`zerosearch data build`", WorldConfig())
    prepare: PrepareConfig = _help("`zerosearch data prepare`", PrepareConfig())
    eval: EvalConfig = _help("`zerosearch eval`", EvalConfig())
    compare: CompareConfig = _help("`zerosearch eval compare`", CompareConfig())
    cost: CostConfig = _help("`zerosearch cost`", CostConfig())
    chat: ChatConfig = _help("`zerosearch chat`", ChatConfig())
    rollouts: RolloutsConfig = _help("`zerosearch rollout`", RolloutsConfig())
    warmstart: WarmstartConfig = _help("`zerosearch warmstart`", WarmstartConfig())
    demo: DemoConfig = _help("`zerosearch demo`", DemoConfig())
    serve: ServeConfig = _help("`zerosearch serve`", ServeConfig())
    collect: CollectConfig = _help("`zerosearch sft collect`", CollectConfig())
    judge: JudgeConfig = _help("`zerosearch sft judge`", JudgeConfig())
    build: BuildConfig = _help("`zerosearch sft build`", BuildConfig())
    grade: GradeConfig = _help("`zerosearch sft grade`", GradeConfig())
    # Defined below TrainConfig, hence the factories.
    sft: SFTConfig = _help("`zerosearch sft train`", default_factory=lambda: SFTConfig())
    simulator: SimulatorBuildConfig = _help(
        "`zerosearch sft miniworld`", default_factory=lambda: SimulatorBuildConfig()
    )

    def __post_init__(self):
        _positive("train", self, "save_every", "keep_checkpoints", "collapse_window", "rollback_lr_factor")
        _positive("train", self, "max_rollbacks", "min_entropy", "collapse_ratio", zero_ok=True)
        _one_of("train", "on_collapse", self.on_collapse, ("stop", "rollback", "off"))


@dataclass
class SFTConfig:
    """Fine-tuning the simulator (`zerosearch sft train`). Paper recipe (7B): lr 1e-6, 1000 steps, batch 2;
    the defaults here suit a 135M model on a CPU."""

    model: str = _help("base model spec to fine-tune", "smollm2-135m")
    data: str = _help("directory holding train.jsonl (and validation.jsonl) from `sft build`", "runs/sft/data")
    out: str = _help("output directory: the merged model + tokenizer, loadable as --model PATH", "runs/sft/model")
    steps: int = _help("optimizer steps", 300)
    lr: float = _help("peak learning rate (cosine decay after warm-up)", 5e-5)
    warmup_steps: int = _help("linear learning-rate warm-up", 10)
    batch_size: int = _help("examples per device step", 4)
    grad_accum: int = _help("gradient accumulation steps", 1)
    max_length: int = _help("tokens per example (prompt + completion); longer ones are cut at the end", 512)
    lora_r: int = _help("LoRA rank; 0 = full fine-tuning (LoRA is merged into the saved model)", 0)
    lora_alpha: int = _help("LoRA alpha", 32)
    train_layers: int = _help(
        "train only the top N transformer blocks, embeddings frozen (0 = all): about half the cost of a step", 0
    )
    save_every: int = _help("checkpoint every N steps (training resumes from the last one; 0 = never)", 100)
    eval_every: int = _help("validation loss every N steps and at the end (0 = never)", 100)
    dtype: str = _help("fp32 | bf16 (bf16 needs a GPU or a recent CPU)", "fp32")
    shuffle: bool = _help("draw the examples in a random order (false: in the file's order, e.g. paired)", True)
    gradient_checkpointing: bool = _help(
        "recompute activations in the backward pass (TRL's default): memory for a large model, a third more compute",
        False,
    )
    seed: int = _help("seed of data order and initialisation", 0)

    def __post_init__(self):
        _one_of("sft", "dtype", self.dtype, ("fp32", "bf16"))
        _positive("sft", self, "steps", "lr", "batch_size", "grad_accum", "max_length")
        _positive("sft", self, "warmup_steps", "lora_r", "save_every", "eval_every", "train_layers", zero_ok=True)
        if self.lora_r and self.train_layers:
            raise ConfigError("sft.train_layers and sft.lora_r are alternatives: set one of them")


@dataclass
class SimulatorBuildConfig:
    """Building `mini-world:simulator` (`zerosearch sft miniworld`, see docs/simulator.md): the paper's simulator
    SFT on the mini-world, sized to meet the report card's targets: 1,024 examples on every block (a recipe of 256,
    sized for 10 minutes on 2 CPU cores, reaches a useful hit of 0.43; the sweep is in docs/simulator.md). Minutes on
    a GPU, about an hour on 2 CPU cores."""

    model: str = _help("base model spec to fine-tune", "smollm2-135m")
    k: int = _help("documents per query, in training and grading (the tiny recipe's engine.k)", 3)
    max_doc_words: int = _help("words kept per document, cut at a sentence end (the prompt asks for about 30)", 20)
    steps: int = _help("SFT optimizer steps (steps x batch_size examples are trained on, each once)", 256)
    batch_size: int = _help("SFT examples per step", 4)
    lr: float = _help("SFT peak learning rate (cosine decay after warm-up)", 5e-4)
    warmup_steps: int = _help("SFT linear learning-rate warm-up", 3)
    max_length: int = _help("SFT tokens per example (prompt + completion)", 256)
    train_layers: int = _help(
        "train only the top N transformer blocks (0 = all, embeddings too): see sft.train_layers", 30
    )
    grade_queries: int = _help("held-out mini-world:test queries graded, each once useful and once noisy", 48)
    max_new_tokens: int = _help("simulator tokens per output at grading (the tiny recipe's)", 160)
    temperature: float = _help("grading temperature: the tiny recipe's simulator_temperature", 0.7)
    top_p: float = _help("grading top-p: the tiny recipe's simulator_top_p", 0.9)
    seed: int = _help("seed of balancing, data order, the held-out sample and grading", 0)
    teach_questions: int = _help(
        "multi-hop, and as many single-hop, mini-world:train questions taught to the base: the RL questions of the "
        "tiny recipe (mini-world:pool)",
        24,
    )
    teach_epochs: int = _help("SFT epochs over every oracle query of the taught questions", 5)

    def __post_init__(self):
        _positive("simulator", self, "k", "max_doc_words", "steps", "batch_size", "lr", "max_length")
        _positive("simulator", self, "teach_questions", "teach_epochs")
        _positive("simulator", self, "grade_queries", "max_new_tokens")
        _positive("simulator", self, "warmup_steps", "train_layers", "temperature", zero_ok=True)
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"simulator.top_p must be in (0, 1], got {self.top_p!r}")


# --- loading -------------------------------------------------------------------------------------------


def _coerce(cls_name: str, name: str, tp: Any, value: Any) -> Any:
    """Turn a YAML/CLI value into the field's type, or raise ConfigError naming the field."""
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{cls_name}.{name} must be a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{name}.")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(cls_name, name, args[0], value)
    try:
        if tp is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                return value.lower() in ("true", "1", "yes", "on")
            if isinstance(value, bool):
                return value
            raise ValueError
        if tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return float(value)
        if tp is int and not isinstance(value, bool) and float(value) == int(float(value)):
            return int(float(value))
        if tp is str and not isinstance(value, (dict, list)):
            return "" if value is None else str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{cls_name}.{name} must be {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config field {prefix}{unknown[0]} (valid: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(prefix.rstrip(".") or cls.__name__, k, hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def _set_dotted(data: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for p in parents:
        data = data.setdefault(p, {})
        if not isinstance(data, dict):
            raise ConfigError(f"cannot set {key}: {p} is not a section")
    data[last] = value


class _Loader(yaml.SafeLoader):
    """YAML whose only booleans are true/false (as in YAML 1.2): `on_collapse: off` is the string "off", not False;
    a bool field still takes yes/no/on/off (`_coerce`)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF")


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects section.field=value, got {item!r}")
    key, raw = item.split("=", 1)
    return key.strip(), load_yaml(raw) if raw.strip() else ""


def load_config(
    cls: type, path: str | Path | None = None, overrides: list[str] | None = None, flags: dict | None = None
) -> Any:
    """Defaults < YAML file < `--set` overrides < typed flags (dotted names; None means not given)."""
    data: dict = {}
    if path:
        path = Path(path)
        if not path.exists() and (RECIPES / f"{path}.yaml").exists():
            path = RECIPES / f"{path}.yaml"  # `--config tiny`
        if not path.exists():
            raise ConfigError(
                f"config file not found: {path} (recipes shipped with zerosearch: {', '.join(recipe_names())})"
            )
        loaded = load_yaml(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config file must hold a mapping, got {type(loaded).__name__}")
        data = loaded
    for item in overrides or []:
        _set_dotted(data, *parse_override(item))
    for key, value in (flags or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    try:
        return from_dict(cls, data)
    except TypeError as e:  # a dataclass __init__ complaint, e.g. a missing required field
        raise ConfigError(str(e)) from None
