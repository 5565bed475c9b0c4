"""Load-time checks of the RL config, the trainer's refusals, and the run directory's safety on resume."""

import pickle

import pytest
import torch
import yaml

from zerosearch.config import ModelConfig, RLConfig, TrainConfig, load_config, to_dict
from zerosearch.errors import ConfigError, UserError
from zerosearch.rl import checkpoint


@pytest.mark.parametrize(
    "override, field",
    [
        ("rl.dual_clip=1.0", "rl.dual_clip"),
        ("rl.gamma=1.5", "rl.gamma"),
        ("rl.lam=-0.1", "rl.lam"),
        ("rl.mini_batch=7", "rl.mini_batch"),  # 4 x 4 = 16 trajectories per step
        ("rl.mini_batch=8", "rl.micro_batch"),  # micro_batch 3 does not divide it
        ("rl.warmup_ratio=2", "rl.warmup_ratio"),
        ("rl.kl_estimator=k4", "rl.kl_estimator"),
    ],
)
def test_cross_field_invariants_fail_at_load_naming_the_field(override, field):
    base = ["rl.prompts_per_step=4", "rl.samples_per_prompt=4", "rl.micro_batch=3"]
    if field != "rl.micro_batch":
        base[-1] = "rl.micro_batch=4"
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(TrainConfig, "tiny", [*base, override])


def test_valid_settings_and_the_paper_recipe_load():
    cfg = load_config(TrainConfig, "paper")
    rl = cfg.rl
    assert (rl.warmup_ratio, rl.entropy_coef, rl.kl_estimator, rl.value_clip) == (0.95, 0.001, "low_var_kl", 0.5)
    assert rl.prompts_per_step * rl.samples_per_prompt // rl.mini_batch == 2  # two optimizer steps per step
    assert RLConfig(dual_clip=3.0, gamma=0.0, lam=1.0).dual_clip == 3.0


def test_training_refuses_an_openai_backend_and_points_to_trl(tmp_path):
    from zerosearch.rl.trainer import train

    cfg = TrainConfig(model=ModelConfig(backend="openai", base_url="http://127.0.0.1:9"), out=str(tmp_path / "r"))
    with pytest.raises(UserError, match="--trainer trl"):
        train(cfg)
    assert not (tmp_path / "r").exists()


def fake_run(tmp_path, cfg: TrainConfig):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000001").mkdir(parents=True)
    (run / "checkpoints" / "step-000001" / "trainer_state.pt").write_bytes(b"")
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    return run


def test_resume_refuses_a_changed_config_naming_the_fields(tmp_path):
    cfg = load_config(TrainConfig, "tiny")
    run = fake_run(tmp_path, cfg)
    changed = load_config(TrainConfig, "tiny", ["rl.lr=3e-5", "engine.k=4", "progress=false", f"out={run}"])
    with pytest.raises(ConfigError, match=r"rl\.lr .*engine\.k|engine\.k .*rl\.lr") as e:
        checkpoint.check_resume(run, changed)
    assert "progress" not in str(e.value)
    same = ["progress=false", "keep_checkpoints=5", f"rl.micro_batch={2 * cfg.rl.micro_batch}"]
    checkpoint.check_resume(run, load_config(TrainConfig, "tiny", same))
    with pytest.raises(UserError, match="no checkpoint"):
        checkpoint.check_resume(tmp_path / "empty", cfg)


def test_partial_checkpoints_are_removed_and_only_complete_ones_count(tmp_path):
    root = tmp_path / "checkpoints"
    (root / ".tmp-step-000002-abc").mkdir(parents=True)
    (root / ".tmp-step-000002-abc" / "model.safetensors").write_bytes(b"half")
    (root / "step-000001").mkdir()
    (root / "step-000001" / "trainer_state.pt").write_bytes(b"")
    assert checkpoint.checkpoints(tmp_path) == [root / "step-000001"]
    checkpoint.clean_partial(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["step-000001"]


class Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_loading_a_checkpoint_never_unpickles_code(tmp_path):
    from zerosearch.models import tiny_random
    from zerosearch.rl.policy import build_actor, make_optimizer

    rl = RLConfig(kl_coef=0.0)
    actor, _ = build_actor(tiny_random()[0], rl)
    optimizer = make_optimizer(actor, rl)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    tokenizer = tiny_random()[1]
    path = checkpoint.save(tmp_path, 1, actor, tokenizer, optimizer, scheduler, {"step": 1}, keep=1)
    assert checkpoint.load(path, actor, optimizer, scheduler) == {"step": 1}  # plain state loads
    state = torch.load(path / "trainer_state.pt", weights_only=True)
    torch.save({**state, "payload": Payload()}, path / "trainer_state.pt", pickle_module=pickle)
    with pytest.raises(UserError, match="refusing to unpickle"):
        checkpoint.load(path, actor, optimizer, scheduler)


def test_the_mixed_engines_routing_survives_a_checkpoint(tmp_path):
    """The engine's state goes through trainer_state.pt (read with weights_only=True): the resumed engine routes
    the next requests exactly as the uninterrupted one."""
    from zerosearch.engines.base import SearchEngine, SearchRequest
    from zerosearch.engines.mixed import MixedEngine
    from zerosearch.models import tiny_random
    from zerosearch.rl.policy import build_actor, make_optimizer

    class Named(SearchEngine):
        def _search(self, requests):
            return [[] for _ in requests]

    def engine():
        return MixedEngine(Named(), Named(), p_real=0.5, seed=0)

    requests = [SearchRequest(query=f"q{i}") for i in range(16)]
    running = engine()
    running.search(requests)
    rl = RLConfig(kl_coef=0.0)
    model, tokenizer = tiny_random()
    actor, _ = build_actor(model, rl)
    optimizer = make_optimizer(actor, rl)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    state = {"step": 1, "engine": running.state_dict()}
    path = checkpoint.save(tmp_path, 1, actor, tokenizer, optimizer, scheduler, state, keep=1)
    resumed = engine()
    resumed.load_state_dict(checkpoint.load(path, actor, optimizer, scheduler)["engine"])
    running.search(requests)
    resumed.search(requests)
    assert resumed.routed == running.routed and resumed.rng.getstate() == running.rng.getstate()


def test_a_resume_may_change_other_commands_sections_but_not_training_ones(tmp_path):
    import dataclasses

    cfg = TrainConfig()
    (tmp_path / "checkpoints" / "step-000001").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-000001" / "trainer_state.pt").write_bytes(b"")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    checkpoint.check_resume(tmp_path, dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, n_boot=7)))
    with pytest.raises(ConfigError, match=r"rl\.lr"):
        checkpoint.check_resume(tmp_path, dataclasses.replace(cfg, rl=dataclasses.replace(cfg.rl, lr=0.5)))
