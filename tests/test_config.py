import pytest

from zerosearch.config import RLConfig, TrainConfig, load_config
from zerosearch.errors import ConfigError


def test_defaults_yaml_set_and_flags_layer_in_order(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rl:\n  lr: 2.0e-6\n  steps: 10\nseed: 3\n")
    cfg = load_config(TrainConfig, recipe, ["rl.steps=20", "rollout.max_turns=2"], {"rl.lr": 5e-6, "seed": None})
    assert (cfg.rl.lr, cfg.rl.steps, cfg.rollout.max_turns, cfg.seed) == (5e-6, 20, 2, 3)
    assert cfg.rl.clip == RLConfig().clip


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("rl.lr=fast", "rl.lr"),
        ("rl.nope=1", "rl.nope"),
        ("rl.steps=0", "rl.steps"),
        ("curriculum.p_end=2", "curriculum.p_end"),
        ("eval.n_boot=0", "eval.n_boot"),
        ("demo.n_eval=0", "demo.n_eval"),
        ("rollouts.p_noisy=2", "rollouts.p_noisy"),
        ("chat.prompt=react", "chat.prompt"),
        ("world.nope=1", "world.nope"),
        ("serve.seed=3", "serve.seed"),  # a curriculum setting without serve.curriculum
        ("rl", "section.field=value"),
    ],
)
def test_bad_values_name_the_field(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(TrainConfig, None, [override])


def test_recipes_load_by_name():
    tiny, paper = load_config(TrainConfig, "tiny"), load_config(TrainConfig, "paper")
    assert (paper.rl.lr, paper.rl.prompts_per_step, paper.rl.samples_per_prompt, paper.rl.steps) == (1e-6, 64, 5, 203)
    assert (paper.rollout.max_turns, paper.engine.k, paper.rl.kl_coef, paper.rl.clip) == (5, 5, 0.001, 0.2)
    assert tiny.rl.prompts_per_step * tiny.rl.samples_per_prompt < 64 * 5


def test_stage_sections_check_cross_field_invariants_at_load_time():
    with pytest.raises(ConfigError, match=r"cost\.paper .* cost\.searches"):
        load_config(TrainConfig, None, ["cost.paper=true", "cost.searches=10"])
    assert load_config(TrainConfig, None, ["cost.paper=true"]).cost.paper


def test_the_paper_recipe_evaluates_on_its_test_sets():
    assert load_config(TrainConfig, "paper").eval.data == load_config(TrainConfig, "paper").eval_data
    assert load_config(TrainConfig, "tiny").eval.data == "mini-world:test"


def test_missing_file_is_a_clear_error():
    with pytest.raises(ConfigError, match="not found"):
        load_config(TrainConfig, "no/such.yaml")


def test_tests_never_write_into_the_users_cache():
    import os
    from pathlib import Path

    from zerosearch.config import cache_dir

    assert cache_dir() == Path(os.environ["ZEROSEARCH_CACHE"])
    assert Path(os.environ["ZEROSEARCH_CACHE"]).name.startswith("zerosearch-test-cache-")
    assert Path.home() / ".cache" not in cache_dir().parents


def test_yaml_words_like_off_stay_strings_and_booleans_still_parse(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("on_collapse: off\nprogress: false\n")
    cfg = load_config(TrainConfig, path)
    assert cfg.on_collapse == "off" and cfg.progress is False
    cfg = load_config(TrainConfig, None, ["on_collapse=off", "progress=no", "demo.warm_start=true"])
    assert cfg.on_collapse == "off" and cfg.progress is False and cfg.demo.warm_start is True
