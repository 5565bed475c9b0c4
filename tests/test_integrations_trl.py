"""TRL's GRPOTrainer driven by our rollout (zerosearch.integrations.trl), on CPU with a tiny model and BM25.

The tiny random model is first taught (a few seconds of SFT on the protocol's own pieces) to search once and then
answer "France", so that the GRPO steps see real searches, observations, and rewards of 0 and 1.
"""

import json

import pytest
import torch
import yaml
from transformers import TrainerCallback
from typer.testing import CliRunner

from zerosearch import prompts
from zerosearch.cli import app
from zerosearch.config import TrainConfig, from_dict
from zerosearch.data.formats import QAExample
from zerosearch.engines.base import EngineError, SearchEngine, SearchRequest
from zerosearch.engines.bm25 import BM25Engine
from zerosearch.errors import ConfigError
from zerosearch.generation.base import chat_prompt
from zerosearch.generation.hf import HFGenerator, encode_text
from zerosearch.integrations.trl import build_trainer, grpo_config, reward_function
from zerosearch.models import load_model
from zerosearch.rewards import score
from zerosearch.rollout import run_rollouts

QUESTIONS = [
    {"id": "q1", "question": "Which country is Paris the capital of?", "golden_answers": ["France"]},
    {"id": "q2", "question": "Who painted the Guernica mural?", "golden_answers": ["Pablo Picasso"]},
]
GOLDS = {q["question"]: q["golden_answers"] for q in QUESTIONS}
CORPUS = [
    {"id": "d1", "contents": "Paris\nParis is the capital and largest city of France."},
    {"id": "d2", "contents": "Guernica\nGuernica is a 1937 mural-sized oil painting by Pablo Picasso."},
    {"id": "d3", "contents": "Madrid\nMadrid is the capital of Spain."},
]


class RecordingEngine(SearchEngine):
    """Real BM25 underneath; keeps every request it receives."""

    name = "recording-bm25"

    def __init__(self, inner: SearchEngine):
        super().__init__()
        self.inner, self.requests = inner, []

    def _search(self, requests):
        self.requests += requests
        return self.inner.search(requests)


def _teach_to_search(model, tokenizer, engine, steps=80):
    """SFT on `<search> paris </search>`, the real observation, then `<answer> France </answer>` or
    `<answer> Spain </answer>` (half and half, so that a GRPO group disagrees); loss on the policy pieces only,
    each piece tokenized on its own as the rollout does."""
    ids = lambda text: tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    obs = ids(prompts.observation(engine.search([SearchRequest("paris", k=2)])[0]))
    rows = []
    prompt = encode_text(tokenizer, chat_prompt(tokenizer, prompts.policy_prompt(QUESTIONS[0]["question"])))
    for answer in ("France", "Spain"):
        pieces = [(prompt, 0), (ids("<search> paris </search>"), 1), (obs, 0), (ids(f"<answer> {answer} </answer>"), 1)]
        rows.append((torch.tensor([[t for p, _ in pieces for t in p]]), [m for p, m in pieces for _ in p]))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(steps):
        for x, mask in rows:
            keep = torch.tensor(mask[1:], dtype=torch.bool)
            hidden = model.model(input_ids=x).last_hidden_state[0, :-1][keep]  # logits only where the loss is
            torch.nn.functional.cross_entropy(model.lm_head(hidden), x[0, 1:][keep]).backward()
        opt.step()
        opt.zero_grad()


class Steps(TrainerCallback):
    """What each optimizer step saw: the engine requests and the trajectories of its rollout."""

    def __init__(self, engine, rollout):
        self.engine, self.rollout, self.seen = engine, rollout, []

    def on_step_end(self, args, state, control, **kw):
        self.seen.append({"requests": list(self.engine.requests), "trajectories": self.rollout.last_trajectories})
        self.engine.requests.clear()


# About 30 s of CPU (SFT, two rollouts, two GRPO updates through TRL's chunked log-prob kernel).
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two GRPOTrainer steps; the curriculum runs p from 0 (step 0) to 1 (step 1), so every search of the first
    step must be useful and every search of the second noisy."""
    tmp = tmp_path_factory.mktemp("trl")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer model: more threads only contend (10x slower on a busy 2-core machine)
    with pytest.MonkeyPatch.context() as mp:
        model, tokenizer = load_model("tiny-random")  # the bundled tokenizer, from the shared cache
        mp.setenv("ZEROSEARCH_CACHE", str(tmp / "cache"))
        (tmp / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in CORPUS))
        (tmp / "train.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
        engine = RecordingEngine(BM25Engine(tmp / "corpus.jsonl"))
        _teach_to_search(model, tokenizer, engine)
        model.save_pretrained(tmp / "policy")
        tokenizer.save_pretrained(tmp / "policy")
        engine.requests.clear()
        cfg = from_dict(
            TrainConfig,
            {
                "model": {"spec": str(tmp / "policy")},
                "engine": {"name": "bm25", "corpus": str(tmp / "corpus.jsonl"), "k": 2},
                "rollout": {"max_turns": 2, "max_turn_tokens": 12, "max_context_tokens": 1024, "top_p": 0.95},
                "curriculum": {"schedule": "exponential", "p_start": 0.0, "p_end": 1.0},
                "rl": {"steps": 1, "prompts_per_step": 2, "samples_per_prompt": 4, "micro_batch": 4, "lr": 1e-4},
                "data": str(tmp / "train.jsonl"),
                "out": str(tmp / "run"),
                "progress": False,
            },
        )
        # rl.steps=1 puts p_end at step 1; the second step (max_steps=2) runs there.
        trainer = build_trainer(cfg, engine=engine, max_steps=2, save_strategy="no")
        rollout = trainer.rollout_func
        steps = Steps(engine, rollout)
        trainer.add_callback(steps)
        before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        try:
            trainer.train()
            yield {
                "trainer": trainer,
                "rollout": rollout,
                "engine": engine,
                "steps": steps.seen,
                "before": before,
                "tmp": tmp,
            }
        finally:
            torch.set_num_threads(threads)


@slow
def test_trl_grpo_trainer_runs_two_steps_and_updates_the_policy(run):
    trainer = run["trainer"]
    assert trainer.state.global_step == 2
    changed = [k for k, v in trainer.model.named_parameters() if not torch.equal(v.detach(), run["before"][k])]
    assert changed, "two GRPO steps left every weight as it was"
    assert trainer.ref_model is not None  # kl_coef > 0: TRL loaded the reference from the saved policy


@slow
def test_trl_curriculum_p_reaches_the_engine_per_step(run):
    first, second = run["steps"]
    for step, mode in ((first, "useful"), (second, "noisy")):
        assert step["requests"], "the taught policy did not search in this step"
        assert {r.mode for r in step["requests"]} == {mode}
        for r in step["requests"]:  # the simulator's conditioning travels with each request
            assert r.answers == GOLDS[r.question]
    assert run["rollout"].p_noisy(0) == 0.0 and run["rollout"].p_noisy(1) == 1.0


@slow
def test_trl_reward_arrives_in_trls_logs(run):
    logs = [h for h in run["trainer"].state.log_history if "rewards/f1/mean" in h]
    assert len(logs) == 2
    for log, step in zip(logs, run["steps"]):
        trajectories = step["trajectories"]
        rewards = [score(t.response_text, t.golden_answers)["reward"] for t in trajectories]
        assert log["rewards/f1/mean"] == pytest.approx(sum(rewards) / len(rewards))
        assert log["curriculum/p_noisy"] == pytest.approx(run["rollout"].p_noisy(run["steps"].index(step)))
        # TRL counts only env_mask=1 tokens as completion length: the observation tokens were masked out.
        policy_tokens = [sum(t.loss_mask) for t in trajectories]
        assert log["completions/mean_length"] == pytest.approx(sum(policy_tokens) / len(policy_tokens))
        assert all(sum(t.loss_mask) < len(t.response_ids) for t in trajectories if t.searches)
    # The taught answer is right for one question and wrong for the other: the reward is not a constant.
    assert {r for s in run["steps"] for t in s["trajectories"] for r in [t.reward]} >= {0.0, 1.0}


@slow
def test_trl_env_mask_equals_our_loss_mask_for_the_same_trajectory(run):
    trainer, rollout = run["trainer"], run["rollout"]
    prompts_ = [q["question"] for q in QUESTIONS for _ in range(2)]
    calls = rollout.calls
    out = rollout(prompts_, trainer)
    # Our own rollout of the same questions, policy, engine, step and seed.
    examples = [QAExample(q["id"], q["question"], q["golden_answers"]) for q in QUESTIONS for _ in range(2)]
    ours = run_rollouts(
        HFGenerator(trainer.model, trainer.processing_class),
        run["engine"],
        examples,
        rollout.cfg.rollout,
        p_noisy=rollout.p_noisy(trainer.state.global_step),
        seed=rollout.cfg.seed * 1_000_003 + calls * 1009,
        k=rollout.cfg.engine.k,
    )
    assert out["completion_ids"] == [t.response_ids for t in ours]
    assert out["prompt_ids"] == [t.prompt_ids for t in ours]
    assert out["env_mask"] == [t.loss_mask for t in ours]
    assert out["logprobs"] is None  # no vLLM: TRL computes the log-probs under its own temperature
    for mask, t in zip(out["env_mask"], ours):
        assert len(mask) == len(t.response_ids)
        expected = [int(s.role == "policy") for s in t.segments for _ in range(s.n_tokens)]
        assert mask == expected
    assert any(0 in m for m in out["env_mask"]) and any(1 in m for m in out["env_mask"])


class DownEngine(SearchEngine):
    name = "down"

    def _search(self, requests):
        raise EngineError("the search server is down")


@slow
def test_trl_a_failed_search_stays_out_of_the_loss_and_the_reward(run):
    trainer, rollout = run["trainer"], run["rollout"]
    rollout.engine = DownEngine()
    try:
        out = rollout([QUESTIONS[0]["question"]] * 2, trainer)
    finally:
        rollout.engine = run["engine"]
    failed = [i for i, why in enumerate(out["stop_reason"]) if why == "search_error"]
    assert failed, "the taught policy did not search"
    for i in failed:
        assert set(out["env_mask"][i]) == {0}
    rewards = reward_function("f1")(completions=[""] * 2, golden_answers=[["France"]] * 2, **out)
    assert [rewards[i] for i in failed] == [None] * len(failed)


@slow
def test_trl_zerosearch_train_trainer_trl_runs_a_recipe(run, tmp_path):
    """`zerosearch train --trainer trl` on a recipe file: one step, a resumable run directory, the final model."""
    tmp = run["tmp"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {"spec": str(tmp / "policy")},
                "engine": {"name": "bm25", "corpus": str(tmp / "corpus.jsonl"), "k": 2},
                "rollout": {"max_turns": 1, "max_turn_tokens": 12, "max_context_tokens": 1024},
                "rl": {"steps": 1, "prompts_per_step": 2, "samples_per_prompt": 2, "micro_batch": 4},
                "data": str(tmp / "train.jsonl"),
                "progress": False,
            }
        )
    )
    out = tmp_path / "run"
    env = {"ZEROSEARCH_CACHE": str(tmp / "cache")}
    args = ["train", "--trainer", "trl", "--config", str(recipe), "--out", str(out), "--trl", "report_to=none"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert (out / "final" / "config.json").is_file() and (out / "config.yaml").is_file()
    state = json.loads((out / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and "rewards/f1/mean" in state["log_history"][0]
    again = CliRunner().invoke(app, args, env=env)  # a finished run is not overwritten
    assert again.exit_code != 0 and "--resume" in str(again.exception)


def test_trl_cli_refuses_bad_trl_options():
    for args, message in (
        (["--trl", "use_vllm=true"], "needs --trainer trl"),
        (["--trainer", "trl", "--trl", "use_vllm"], "KEY=VALUE"),
        (["--trainer", "verl"], "ours or trl"),
    ):
        result = CliRunner().invoke(app, ["train", *args])
        assert result.exit_code != 0 and message in str(result.exception), result.output


def _cfg(**sections):
    return from_dict(TrainConfig, sections)


def test_trl_config_maps_the_recipe_and_refuses_what_grpo_trainer_cannot_do(tmp_path):
    cfg = _cfg(
        rl={
            "steps": 10,
            "prompts_per_step": 8,
            "samples_per_prompt": 4,
            "micro_batch": 4,
            "mini_batch": 16,
            "epochs": 2,
            "lr": 2e-6,
            "kl_coef": 0.01,
            "clip": 0.3,
            "warmup_ratio": 0.1,
        },
        out=str(tmp_path),
    )
    args = grpo_config(cfg)
    assert (args.num_generations, args.per_device_train_batch_size) == (4, 4)
    assert (args.gradient_accumulation_steps, args.steps_per_generation, args.num_iterations) == (4, 8, 2)
    assert args.generation_batch_size == 32  # one rollout batch: 8 questions x 4 samples
    assert args.max_steps == 10 * 2 * 2  # 2 mini-batches x 2 epochs per rollout batch
    assert (args.learning_rate, args.beta, args.epsilon, args.warmup_steps) == (2e-6, 0.01, 0.3, 0.1)
    assert grpo_config(cfg, beta=0.0).beta == 0.0
    for bad, match in (
        ({"rl": {"algo": "ppo", "samples_per_prompt": 2}}, "rl.algo=ppo"),
        ({"rl": {"kl_estimator": "k1"}}, "k3"),
        ({"model": {"backend": "openai", "base_url": "http://x"}}, "vllm_mode=server"),
        ({"rl": {"prompts_per_step": 3, "micro_batch": 4}}, "micro_batch"),
        ({"rollout": {"temperature": 0.0}}, "sampling"),
    ):
        with pytest.raises(ConfigError, match=match):
            grpo_config(_cfg(**bad))
    with pytest.raises(ConfigError, match="not a GRPOConfig field"):
        grpo_config(_cfg(), no_such_field=1)
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        grpo_config(_cfg(), use_vllm=True, vllm_tensor_parallel_size=2)


def test_trl_reward_function_scores_the_answer_turn_not_the_documents():
    fn = reward_function("f1", format_bonus=0.5)
    assert fn.__name__ == "f1"
    golds = [["France"], ["France"], ["France"]]
    documents = "<information>Doc 1: <answer> France </answer></information>"
    rewards = fn(
        completions=[documents + "<answer> Spain </answer>", documents, "<answer> France </answer>"],
        golden_answers=golds,
        answer_turn=["<answer> Spain </answer>", "<search> x </search>", "<answer> France </answer>"],
        stop_reason=["answer", "max_turns", "answer"],
    )
    assert rewards == [0.5, 0.0, 1.5]  # the format bonus for a well-formed answer, F1 of the answer only
    assert fn(completions=["<answer> France </answer>"], golden_answers=[["France"]]) == [1.5]  # plain TRL
