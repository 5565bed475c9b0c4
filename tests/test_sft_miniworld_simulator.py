"""`mini-world:simulator`: the build pipeline end to end (tiny-random, a few SFT steps) and the spec's resolution."""

import dataclasses
import json
import os

import pytest
import torch
from typer.testing import CliRunner

from zerosearch.cli import app
from zerosearch.config import SimulatorBuildConfig
from zerosearch.data import load_questions
from zerosearch.errors import UserError
from zerosearch.models import bundled_dir, freeze_below, load_model, model_identity, resolve
from zerosearch.rewards import contains_answer
from zerosearch.sft import miniworld
from zerosearch.sft.build import split_by_document
from zerosearch.sft.grade import parse_spec

TINY = SimulatorBuildConfig(
    model="tiny-random",
    steps=2,
    batch_size=2,
    max_length=256,
    train_layers=1,
    grade_queries=3,
    max_new_tokens=8,
    teach_questions=2,
    teach_epochs=1,
)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A fresh cache that shares only the converted smollm2 (tiny-random's tokenizer), and the tiny recipe."""
    tokenizer_dir = bundled_dir("smollm2-135m")
    (tmp_path / "models").mkdir()
    os.symlink(tokenizer_dir, tmp_path / "models" / "smollm2-135m")
    monkeypatch.setenv("ZEROSEARCH_CACHE", str(tmp_path))
    monkeypatch.setattr(miniworld, "RECIPE", TINY)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer model: more threads only contend
    yield tmp_path
    torch.set_num_threads(threads)


def test_the_spec_builds_once_into_the_cache_and_loads(cache, capfd):
    model, tokenizer = load_model("mini-world:simulator")
    built = cache / "models" / f"mini-world-simulator-{miniworld.key(TINY)}"
    base = cache / "models" / f"mini-world-simulator-base-{miniworld.base_key(TINY)}"
    assert resolve("mini-world:simulator") == str(built) and resolve("mini-world:simulator-base") == str(base)
    assert model.config.num_hidden_layers == 2 and tokenizer.padding_side == "left"
    err = capfd.readouterr().err
    stages = ("1/5 collect", "2/5 judge", "3/5 build", "4/5 fine-tune", "step 2/2", "5/5 grade", "base done in")
    for stage in (*stages, "teach 1/2: 4 training questions", "teach 2/2 grade", "] done in"):
        assert f"[mini-world:simulator] {stage}" in err or stage in err, stage
    assert not list((cache / "models").glob(".mini-world-simulator-*"))  # the temp dirs were renamed or removed
    assert not (built / "checkpoints").exists() and not (base / "checkpoints").exists()

    for path, spec in ((base, "mini-world:simulator-base"), (built, "mini-world:simulator")):
        report = json.loads((path / "report.json").read_text())
        for name in ("useful_answer_hit", "noisy_answer_leak", "format_validity", "prompt_copy"):
            assert 0.0 <= report[name] <= 1.0 and name in report["met"] and name in report["targets"]
        assert report["simulator"] == spec
        assert report["queries"] == 3 and report["k"] == 3 and report["temperature"] == 0.7
        info = json.loads((path / "build.json").read_text())
        assert info["identity"] == model_identity(spec)
    assert json.loads((base / "build.json").read_text())["fine_tune"]["steps"] == 2

    # The teaching: every paired example of the 2 multi-hop and 2 single-hop taught questions, one epoch, from the
    # base; the pool (mini-world:pool) holds those questions and no control.
    info = json.loads((built / "build.json").read_text())
    taught, controls = info["taught"]["questions"], info["taught"]["controls"]
    assert len(taught) == len(controls) == 4 and not set(taught) & set(controls)
    assert info["base"] == model_identity("mini-world:simulator-base")
    examples = [json.loads(line) for line in (built / "data" / "train.jsonl").read_text().splitlines()]
    assert {e["question_id"] for e in examples} == set(taught) and len(examples) == info["taught"]["examples"]
    assert info["fine_tune"]["steps"] == -(-len(examples) // TINY.batch_size)
    pool = load_questions("mini-world:pool")
    assert [q.id for q in pool] == [q.id for q in load_questions(built / "pool.jsonl")]
    assert sorted(q.id for q in pool) == sorted(taught)
    assert sorted(q.meta["type"] == "single_hop" for q in pool) == [False, False, True, True]
    assert all(len(q.meta["hops"]) >= 2 for q in pool if q.meta["type"] != "single_hop")

    # The base's training set: the released simulators' prompt, k documents; useful ones hold the answer, noisy not.
    rows = [json.loads(line) for line in (base / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == TINY.steps * TINY.batch_size
    held = {json.loads(line)["question_id"] for line in (base / "data" / "heldout.jsonl").read_text().splitlines()}
    assert (built / "data" / "heldout.jsonl").read_text() == (base / "data" / "heldout.jsonl").read_text()
    assert held and all(q.startswith("miniworld_test_") for q in held)
    assert all(r["question_id"].startswith("miniworld_train_") for r in rows)
    for r in rows:
        user, docs = r["prompt"][-1]["content"], r["completion"][0]["content"]
        assert user.endswith(f"{r['mode'].capitalize()} Output:\n")
        assert docs.startswith("Doc 1: ") and docs.count("\nDoc ") == TINY.k - 1
        assert contains_answer(docs, r["query_answers"]) == (r["mode"] == "useful")
    # Trained in this order, a query's useful example then its noisy one (`paired`, sft.shuffle=false).
    assert [r["mode"] for r in rows] == ["useful", "noisy"] * (len(rows) // 2)
    assert all((a["question_id"], a["query"]) == (b["question_id"], b["query"]) for a, b in zip(rows[::2], rows[1::2]))

    capfd.readouterr()
    load_model("mini-world:simulator")  # cached now: no second build
    assert "1/5 collect" not in capfd.readouterr().err

    # A changed teaching reuses the base; a changed base recipe changes both.
    retaught = dataclasses.replace(TINY, teach_epochs=2)
    assert miniworld.base_key(retaught) == miniworld.base_key(TINY) and miniworld.key(retaught) != miniworld.key(TINY)
    rebased = dataclasses.replace(TINY, steps=3)
    assert miniworld.base_key(rebased) != miniworld.base_key(TINY) and miniworld.key(rebased) != miniworld.key(TINY)


def test_identity_follows_the_recipe_without_building(cache):
    before = model_identity("mini-world:simulator")
    assert before.startswith("mini-world:simulator@")
    assert model_identity("mini-world:simulator-base").startswith("mini-world:simulator-base@")
    assert miniworld.identity(SimulatorBuildConfig(model="tiny-random", steps=3)) != before
    assert not list((cache / "models").glob("*mini-world-simulator*"))


def test_grade_reads_the_spec_as_a_fine_tuned_simulator():
    assert parse_spec("mini-world:simulator") == ("mini-world:simulator", "sft")
    assert parse_spec("mini-world:simulator:fewshot") == ("mini-world:simulator", "fewshot")
    assert parse_spec("mini-world:simulator-base") == ("mini-world:simulator-base", "sft")
    assert parse_spec("smollm2-135m") == ("smollm2-135m", "fewshot")


def test_freeze_below_trains_only_the_top_blocks():
    model, _ = load_model("tiny-random")
    freeze_below(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.norm.")) for n in trainable)
    with pytest.raises(UserError, match="has 2 blocks"):
        freeze_below(model, 3)


def test_cli_never_builds_over_a_directory_with_files(tmp_path):
    (tmp_path / "keep.txt").write_text("data")
    # a tiny recipe, so that a regression fails in seconds rather than building the real one over the files
    args = [
        "sft",
        "miniworld",
        "--out",
        str(tmp_path),
        "--set",
        "simulator.model=tiny-random",
        "--set",
        "simulator.steps=1",
    ]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, UserError) and "not empty" in str(result.exception)
    assert (tmp_path / "keep.txt").read_text() == "data"


def test_split_by_document_pairs_the_modes_of_one_query():
    docs = [{"text": t} for t in ("Ann was born in Oslo.", "Bo lives in Rome.", "Ann paints.", "Cy was born in 1900.")]
    record = {"query": "Where was Ann born?", "golden_answers": ["Oslo"], "documents": docs, "label": "useful"}
    useful, noisy = split_by_document(record, k=3)
    assert useful["label"] == "useful" and [d["text"] for d in useful["documents"]] == [
        "Ann was born in Oslo.",
        "Bo lives in Rome.",
        "Ann paints.",
    ]
    assert noisy["label"] == "noisy" and all("Oslo" not in d["text"] for d in noisy["documents"])
    assert len(noisy["documents"]) == 3
    # no document with the answer: no useful example; fewer than k without it: no noisy one
    assert [r["label"] for r in split_by_document(record | {"golden_answers": ["Paris"]}, k=3)] == ["noisy"]
    assert split_by_document(record, k=4) == [useful | {"documents": useful["documents"] + [docs[3]]}]


def test_split_by_document_judges_a_first_hop_on_its_own_answer():
    texts = ("Ann founded Vell Press.", "Oslo is a city.", "Vell Press prints maps.", "Ann was born in Oslo.", "Vell")
    record = {
        "query": "Who founded Vell Press?",
        "golden_answers": ["Oslo"],  # of "where was the founder of Vell Press born?"
        "query_answers": ["Ann"],
        "documents": [{"text": t} for t in texts],
        "label": "useful",
    }
    useful, noisy = split_by_document(record, k=2)
    # The bridge, then filler without either answer: the final answer in a first hop's useful documents would be
    # a shortcut (so "Ann was born in Oslo." goes too), in its noisy ones a leak.
    assert [d["text"] for d in useful["documents"]] == ["Ann founded Vell Press.", "Vell Press prints maps."]
    assert [d["text"] for d in noisy["documents"]] == ["Vell Press prints maps.", "Vell"]
    # a last hop asks for the final answer: its documents that hold it are its useful ones
    last = record | {"query": "Where was Ann born?", "query_answers": ["Oslo"]}
    assert [d["text"] for d in split_by_document(last, k=2)[0]["documents"]] == list(texts[1:4:2])
