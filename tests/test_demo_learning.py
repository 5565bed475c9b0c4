"""The learning benchmark (benchmarks/learning.py) end to end on tiny-random, built from the demo's stages: warm
start, evaluations with BM25, RL against the simulator and against BM25, the EM curve, learning.json; a rerun
resumes (nothing is redone); and the demo's simulator report for an engine without a report card."""

import importlib.util
import json
from pathlib import Path

import pytest

from zerosearch.config import TrainConfig
from zerosearch.demo import simulator_report

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "model.spec=tiny-random",
    "engine.simulator_model=tiny-random",
    "engine.simulator_prompt=fewshot",
    "engine.simulator_max_tokens=16",
    "rollout.max_turns=1",  # one search, then the answer: one-hop demonstrations of the warm start pass
    "rollout.max_turn_tokens=56",  # the longest scripted turn of the warm start is 51 tokens
    "warmstart.examples=2",
    "warmstart.steps=1",
    "warmstart.batch_size=2",
    "eval.batch_size=4",
    "rl.train_layers=1",  # of tiny-random's 2 blocks
]


def benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def learning():
    return benchmark("learning")


@pytest.mark.slow
def test_learning_benchmark_runs_end_to_end_and_resumes(tmp_path):
    argv = ["--out", str(tmp_path / "work"), "--results", str(tmp_path / "learning.json"), "--steps", "2"]
    argv += ["--prompts-per-step", "1", "--samples", "2", "--n-test", "4", "--curve-every", "1", "--curve-n", "2"]
    argv += ["--parallel"]  # the BM25 run in a second process
    for item in TINY:
        argv += ["--set", item]
    bench = learning()
    result = bench.main(argv)

    saved = json.loads((tmp_path / "learning.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert (tmp_path / "learning.png").stat().st_size > 0
    assert saved["steps"] == 2 and saved["n_test"] == 4 and saved["samples_per_prompt"] == 2
    assert saved["command"].startswith("python benchmarks/learning.py --out ")
    for name in ("trained_minus_warm", "sim_minus_bm25", "trained_minus_rag"):
        for metric in ("em", "f1"):
            ci = saved[name][metric]
            assert ci["lo"] <= ci["mean"] <= ci["hi"]
    assert set(saved["em"]) == {"rag-bm25", "warm-started", "sim-trained", "bm25-trained"}
    for run in ("sim", "bm25"):
        assert [r["step"] for r in saved["per_step"][run]] == [1, 2]
        assert all(r["frac_reward_zero_std"] is not None and r["entropy"] is not None for r in saved["per_step"][run])
        assert [p["step"] for p in saved["curve"][run]] == [0, 1, 2]
        windows = saved["reward_by_searches"][run]
        assert [w["steps"] for w in windows] == [[1, 1], [2, 2]]
        assert all(abs(sum(n["share"] for n in w["searches"].values()) - 1) < 1e-9 for w in windows)
        for w in saved["engine_knowledge"][run]:
            assert w["searches"] > 0 and 0 <= w["first_hop_answer"] <= 1 and 0 <= w["final_answer"] <= 1
    for name, by_type in saved["em_by_type"].items():
        assert sum(t["n"] for t in by_type.values()) == 4, name
        assert by_type.keys() <= {"single_hop", "two_hop", "comparison"}
    # The curriculum of Eq. 1 against the simulator (p rises from 0); none against BM25, which has no noisy mode.
    assert saved["per_step"]["sim"][-1]["p_noisy"] > 0 and saved["per_step"]["bm25"][-1]["p_noisy"] == 0
    assert json.loads((tmp_path / "work" / "simulator" / "report.json").read_text())["report_card"] is None

    # A rerun of the same command redoes nothing: no new training step, no new evaluated question.
    records = sorted((tmp_path / "work").rglob("results.jsonl"))
    sizes = [p.stat().st_size for p in records]
    metrics = (tmp_path / "work" / "sim" / "metrics.jsonl").read_text()
    again = bench.main(argv)
    assert [p.stat().st_size for p in records] == sizes
    assert (tmp_path / "work" / "sim" / "metrics.jsonl").read_text() == metrics
    assert again["em"] == result["em"] and again["curve"] == result["curve"]


@pytest.mark.slow
def test_learning_benchmark_sim_only_has_no_bm25_run(tmp_path):
    argv = ["--out", str(tmp_path / "work"), "--results", str(tmp_path / "learning.json"), "--steps", "1"]
    argv += ["--prompts-per-step", "1", "--samples", "2", "--n-test", "2", "--curve-n", "2", "--sim-only"]
    for item in TINY:
        argv += ["--set", item]
    result = learning().main(argv)

    assert set(result["em"]) == {"rag-bm25", "warm-started", "sim-trained"}
    assert "sim_minus_bm25" not in result and result["trained_minus_warm"]["em"]["lo"] is not None
    assert set(result["per_step"]) == set(result["curve"]) == {"sim"}
    assert not (tmp_path / "work" / "bm25").exists()
    assert (tmp_path / "learning.png").stat().st_size > 0


def write_trajectories(run_dir: Path, by_step: dict[int, list[dict]]) -> None:
    trajectories = run_dir / "trajectories"
    trajectories.mkdir()
    for step, rows in by_step.items():
        (trajectories / f"step-{step:06d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_engine_knowledge_reads_what_useful_documents_held_for_multi_hop_questions(tmp_path):
    hops = {"two": [{"answer": "Quydun"}, {"answer": "Harkova"}], "one": [{"answer": "1911"}]}

    def row(qid, *searches):
        documents = [[{"text": t} for t in texts] for _, texts in searches]
        searches = [{"mode": mode, "documents": docs} for (mode, _), docs in zip(searches, documents)]
        return {"id": qid, "golden_answers": [hops[qid][-1]["answer"]], "searches": searches}

    write_trajectories(
        tmp_path,
        {
            1: [
                row("two", ("useful", ["X was born in Quydun."]), ("useful", ["Quydun lies in Harkova."])),
                row("two", ("noisy", ["Quydun, Harkova"])),  # a noisy search is not the engine's knowledge
                row("one", ("useful", ["founded in 1911"])),  # a one-hop question has no bridge
            ],
            3: [row("two", ("useful", ["Harkova, says the simulator."]))],
        },
    )
    assert learning().engine_knowledge(tmp_path, hops, 2) == [
        {"steps": [1, 2], "searches": 2, "first_hop_answer": 1.0, "final_answer": 0.5},
        {"steps": [3, 4], "searches": 1, "first_hop_answer": 0.0, "final_answer": 1.0},
    ]


def test_em_by_type_splits_a_policys_records():
    records = [{"id": "a", "em": 1.0}, {"id": "b", "em": 0.0}, {"id": "c", "em": 1.0}, {"id": "d", "em": 0.0}]
    types = {"a": "single_hop", "b": "single_hop", "c": "two_hop"}
    assert learning().em_by_type(records, types) == {
        "single_hop": {"n": 2, "em": 0.5},
        "two_hop": {"n": 1, "em": 1.0},
        "untyped": {"n": 1, "em": 0.0},
    }


def test_reward_by_searches_groups_a_runs_trajectories_per_window(tmp_path):
    by_step = {1: [(1, 1.0), (2, 0.0)], 2: [(2, 1.0), (2, 0.5)], 3: [(0, 0.0)]}  # (searches, reward) per trajectory
    write_trajectories(
        tmp_path,
        {step: [{"searches": [{"query": "q"}] * n, "reward": r} for n, r in rows] for step, rows in by_step.items()},
    )
    (tmp_path / "trajectories" / "step-000003.html").write_text("<html></html>")  # the viewer beside them is not read

    assert learning().reward_by_searches(tmp_path, 2) == [
        {"steps": [1, 2], "searches": {"1": {"share": 0.25, "reward": 1.0}, "2": {"share": 0.75, "reward": 0.5}}},
        {"steps": [3, 4], "searches": {"0": {"share": 1.0, "reward": 0.0}}},
    ]


def test_learning_benchmark_rejects_a_curve_larger_than_the_test_set(tmp_path, capsys):
    with pytest.raises(SystemExit):
        learning().main(["--out", str(tmp_path), "--n-test", "4", "--curve-n", "8"])
    assert "--curve-n must be <= --n-test" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        learning().main(["--out", str(tmp_path), "--parallel", "--sim-only"])
    assert "there is none with --sim-only" in capsys.readouterr().err


def test_a_simulator_without_a_report_card_is_named_in_its_place(tmp_path):
    path = simulator_report(TrainConfig(), tmp_path / "simulator")
    note = json.loads(path.read_text())
    assert note["simulator"] == "smollm2-135m" and note["report_card"] is None


@pytest.mark.slow
def test_demo_runs_the_loop_and_points_to_the_learning_benchmark(tmp_path, capsys):
    from zerosearch.config import load_config
    from zerosearch.demo import run_demo

    sizes = ["demo.steps=1", "demo.n_eval=2", "demo.prompts_per_step=1", "rl.samples_per_prompt=2"]
    cfg = load_config(TrainConfig, "tiny", [*TINY, *sizes, f"demo.out={tmp_path / 'demo'}"])
    result = run_demo(cfg)

    assert set(result["summaries"]) == {"rag-bm25", "untrained", "warm-started", "trained"}
    evaluated = json.loads((tmp_path / "demo" / "eval" / "results.json").read_text())
    assert evaluated["methods"]["trained"]["average"]["n"] == 2
    assert (tmp_path / "demo" / "simulator" / "report.json").exists()
    assert (tmp_path / "demo" / "warm" / "warmstart.json").exists()
    out = capsys.readouterr().out
    assert "benchmarks/results/learning.json" in out
    assert "eval policy of " in out and "step 1/1" in out  # progress lines, stdout not being a terminal
    assert f"eval rag of {tmp_path / 'demo' / 'warm'}" in out  # RAG by the model that answers in the protocol


@pytest.mark.slow
def test_demo_benchmark_times_the_demo_and_reads_its_bars(tmp_path):
    sizes = ["demo.steps=1", "demo.n_eval=2", "demo.prompts_per_step=1", "rl.samples_per_prompt=2"]
    demo_args = ["--config", "tiny"] + [arg for item in [*TINY, *sizes] for arg in ("--set", item)]
    argv = ["--out", str(tmp_path / "demo"), "--results", str(tmp_path / "demo.json"), "--", *demo_args]
    result = benchmark("demo").main(argv)

    assert json.loads((tmp_path / "demo.json").read_text()) == result
    assert "step 1/1" in (tmp_path / "demo" / "demo.log").read_text()
    assert 0 < result["minutes"] < 60 and 0 < result["peak_rss_gib"] < 24
    evaluated = json.loads((tmp_path / "demo" / "eval" / "results.json").read_text())["methods"]
    assert result["em"] == {name: m["average"]["em"]["mean"] for name, m in evaluated.items()}
    assert result["n_eval"] == 2 and not result["met"]["n_eval"]
    assert result["met"]["trained_ge_warm"] == (result["em"]["trained"] >= result["em"]["warm-started"])
    assert result["met"]["report_card"] is False  # tiny-random's prompt-based simulator carries no card


@pytest.mark.slow
def test_demo_benchmark_names_the_log_of_a_failed_demo(tmp_path, capsys):
    argv = ["--out", str(tmp_path / "demo"), "--results", str(tmp_path / "demo.json"), "--", "--set", "demo.steps=0"]
    with pytest.raises(SystemExit) as failed:
        benchmark("demo").main(argv)
    assert str(tmp_path / "demo" / "demo.log") in str(failed.value)
    assert not (tmp_path / "demo.json").exists()


def test_demo_benchmark_refuses_to_empty_a_directory_it_did_not_write(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as refused:
        benchmark("demo").main(["--out", str(tmp_path / "mine"), "--results", str(tmp_path / "demo.json")])
    assert "not a demo benchmark's output" in str(refused.value)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_bridge_hops_are_the_oracle_queries_whose_answer_is_not_the_final_one(tmp_path):
    from zerosearch.sft.miniworld import bridge_hops, interactions

    records = interactions("train", 3, tmp_path / "train.interactions.jsonl")
    hops = bridge_hops(records)
    hopped = {r["question_id"] for r in records if r.get("query_answers")}
    assert hops and set(hops) <= hopped
    assert {len(rs) for rs in hops.values()} == {1, 2}  # a two-hop question's first hop; a comparison's two sides
    for rs in hops.values():
        for r in rs:
            assert r["query"] != r["question"]
            assert set(r["query_answers"]).isdisjoint(r["golden_answers"])  # the bridge, not the final answer


@pytest.mark.slow
def test_simulator_knowledge_benchmark_measures_a_taught_simulator(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from zerosearch.cli import app
    from zerosearch.models import bundled_dir

    (tmp_path / "cache" / "models").mkdir(parents=True)  # a fresh cache sharing only tiny-random's tokenizer
    (tmp_path / "cache" / "models" / "smollm2-135m").symlink_to(bundled_dir("smollm2-135m"))
    monkeypatch.setenv("ZEROSEARCH_CACHE", str(tmp_path / "cache"))
    recipe = {"model": "tiny-random", "steps": 2, "batch_size": 2, "train_layers": 1, "grade_queries": 2}
    recipe |= {"max_new_tokens": 8, "teach_questions": 2, "teach_epochs": 1}
    sets = [arg for name, value in recipe.items() for arg in ("--set", f"simulator.{name}={value}")]
    built = CliRunner().invoke(app, ["sft", "miniworld", "--out", str(tmp_path / "sim"), *sets])
    assert built.exit_code == 0, built.output
    argv = ["--simulator", str(tmp_path / "sim"), "--out", str(tmp_path / "work")]
    result = benchmark("simulator_knowledge").main([*argv, "--results", str(tmp_path / "k.json")])

    assert json.loads((tmp_path / "k.json").read_text()) == json.loads(json.dumps(result))
    assert result["base"] == str(tmp_path / "sim" / "base") and result["questions"] == 2
    assert result["examples"] >= 2 and result["examples"] % 2 == 0 and result["sft_steps"] >= 1
    for when in ("before", "after"):
        for group in ("taught", "control"):
            hops, answers = result[when][group]["bridge_hops"], result[when][group]["answer_queries"]
            assert hops["outputs"] >= 2 and 0 <= hops["hop_answer"] <= 1 and 0 <= hops["final_answer"] <= 1
            assert answers["outputs"] == 0 or 0 <= answers["answer_hit"] <= 1
    with pytest.raises(SystemExit, match="not a taught simulator"):
        benchmark("simulator_knowledge").main(["--simulator", str(tmp_path / "sim" / "base"), "--base", "x"])
