"""verl integration: the parquet data and reward (always), and the search tool through verl's own code (dataset,
tool registry, the tool agent loop's tool call) where verl is installed; on CPU, with BM25 over a tiny corpus.

verl is not a dependency (its install pins transformers < 5.11); to run the verl part:
    pip install --no-deps verl==0.9.1 && pip install ray 'tensordict>=0.8,<=0.10' codetiming hydra-core cachetools
"""

import asyncio
import json
import types

import pandas as pd
import pytest
import yaml

from zerosearch.data.formats import QAExample
from zerosearch.engines.base import SearchEngine
from zerosearch.errors import ConfigError
from zerosearch.integrations.verl import TOOL_NAME, compute_score, write_parquet

EXAMPLES = [
    QAExample("q1", "Which country is Paris the capital of", ["France"], "nq"),
    QAExample("q2", "Who painted the Guernica mural", ["Pablo Picasso", "Picasso"], "hotpotqa"),
    QAExample("q3", "What is the capital of Spain", ["Madrid"], "nq"),
]
CORPUS = [
    {"id": "d1", "contents": "Paris\nParis is the capital and largest city of France."},
    {"id": "d2", "contents": "Guernica\nGuernica is a 1937 mural-sized oil painting by Pablo Picasso."},
    {"id": "d3", "contents": "Madrid\nMadrid is the capital of Spain."},
]


def _kwargs(row) -> dict:
    return row["extra_info"]["tools_kwargs"][TOOL_NAME]["create_kwargs"]


def test_verl_training_parquet_is_in_training_order_with_one_step_per_batch(tmp_path):
    path = write_parquet(EXAMPLES, tmp_path / "train.parquet", batch_size=2, steps=4, seed=1)
    rows = pd.read_parquet(path).to_dict("records")
    assert len(rows) == 8
    assert [_kwargs(r)["step"] for r in rows] == [0, 0, 1, 1, 2, 2, 3, 3]
    # every question once per pass, reshuffled per pass
    assert sorted(_kwargs(r)["question"] for r in rows[:3]) == sorted(ex.question for ex in EXAMPLES)
    by_question = {ex.question: ex for ex in EXAMPLES}
    for r in rows:
        ex = by_question[_kwargs(r)["question"]]
        assert list(_kwargs(r)["golden_answers"]) == ex.golden_answers
        assert list(r["reward_model"]["ground_truth"]["target"]) == ex.golden_answers
        assert r["data_source"] == ex.data_source and r["agent_name"] == "tool_agent"
        assert ex.question in r["prompt"][0]["content"] and "search tool" in r["prompt"][0]["content"]
    val = pd.read_parquet(write_parquet(EXAMPLES, tmp_path / "val.parquet", split="test")).to_dict("records")
    assert [_kwargs(r)["question"] for r in val] == [ex.question for ex in EXAMPLES]
    assert all("step" not in _kwargs(r) for r in val)  # validation: useful documents
    with pytest.raises(ConfigError, match="both"):
        write_parquet(EXAMPLES, tmp_path / "x.parquet", batch_size=2)


def test_verl_compute_score_is_f1_of_the_last_answer():
    truth = {"target": ["Pablo Picasso"]}
    assert compute_score("nq", "<answer> Picasso </answer>", truth)["score"] == pytest.approx(2 / 3)
    assert compute_score("nq", "<answer> x </answer> <answer> Pablo Picasso </answer>", truth)["score"] == 1.0
    assert compute_score("nq", "no answer", truth)["score"] == 0.0
    assert compute_score("nq", "<answer>Picasso</answer>", truth, {"reward": "em"})["score"] == 0.0


class Recording(SearchEngine):
    name = "recording"

    def __init__(self, inner):
        super().__init__()
        self.inner, self.requests = inner, []

    def _search(self, requests):
        self.requests += requests
        return self.inner.search(requests)


@pytest.fixture
def verl_parts():
    """verl's tool registry, dataset and tool agent loop; skipped (with the reason) where verl does not import."""
    try:
        from verl.experimental.agent_loop.tool_agent_loop import AgentData, ToolAgentLoop
        from verl.experimental.agent_loop.tool_parser import ToolParser
        from verl.tools.tool_registry import initialize_tools_from_config
        from verl.utils.dataset.rl_dataset import RLHFDataset
    except ImportError as e:
        pytest.skip(f"verl is not importable here ({e}); see this file's docstring to install it")
    return types.SimpleNamespace(
        AgentData=AgentData,
        ToolAgentLoop=ToolAgentLoop,
        ToolParser=ToolParser,
        initialize_tools_from_config=initialize_tools_from_config,
        RLHFDataset=RLHFDataset,
    )


def test_verl_tool_answers_verl_tool_calls_with_the_samples_question_answers_and_curriculum(
    verl_parts, tmp_path, monkeypatch
):
    from omegaconf import OmegaConf

    from zerosearch.models import load_model

    tokenizer = load_model("tiny-random")[1]  # the bundled tokenizer, from the shared cache
    monkeypatch.setenv("ZEROSEARCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in CORPUS))
    config = {
        "tools": [
            {
                "class_name": "zerosearch.integrations.verl.tool.ZeroSearchTool",
                "config": {
                    "type": "native",
                    "engine": {"name": "bm25", "corpus": str(tmp_path / "corpus.jsonl"), "k": 2},
                    # Eq. 1 over 1 step: p = 0 at step 0, p = p_end = 1 from step 1 on.
                    "curriculum": {"p_start": 0.0, "p_end": 1.0, "total_steps": 1},
                },
            }
        ]
    }
    (tmp_path / "tools.yaml").write_text(yaml.safe_dump(config))
    [tool] = verl_parts.initialize_tools_from_config(str(tmp_path / "tools.yaml"))
    assert tool.name == TOOL_NAME
    tool.engine = Recording(tool.engine)

    # verl's dataset reads the per-sample arguments from our parquet
    write_parquet(EXAMPLES, tmp_path / "train.parquet", batch_size=2, steps=2)
    data = verl_parts.RLHFDataset(
        str(tmp_path / "train.parquet"),
        tokenizer,
        OmegaConf.create({"max_prompt_length": 2048, "filter_overlong_prompts": False, "cache_dir": str(tmp_path)}),
    )
    rows = [data[i] for i in range(len(data))]

    # the tool agent loop's own tool call: create(create_kwargs) -> execute -> release
    loop = types.SimpleNamespace(
        tools={tool.name: tool}, max_tool_response_length=4096, tool_response_truncate_side="middle"
    )
    parser = verl_parts.ToolParser.get_tool_parser("hermes", tokenizer)

    def call(row, arguments):
        agent = verl_parts.AgentData(
            messages=list(row["raw_prompt"]),
            image_data=None,
            video_data=None,
            audio_data=None,
            mm_processor_kwargs=None,
            metrics={},
            request_id="r",
            tools_kwargs=row["tools_kwargs"],
        )
        # what a policy writes, parsed by verl's hermes parser (multi_turn.format=hermes)
        call_json = json.dumps({"name": TOOL_NAME, "arguments": arguments})
        text = f"<think> Look it up. </think><tool_call>{call_json}</tool_call>"
        ids = tokenizer(text, add_special_tokens=False).input_ids
        _, [tool_call] = asyncio.run(parser.extract_tool_calls(ids, [tool.tool_schema]))
        return asyncio.run(verl_parts.ToolAgentLoop._call_tool(loop, tool_call, row["tools_kwargs"], agent))

    for row in rows:
        response, reward, _ = call(row, {"query": "capital of France"})
        assert response.text.startswith("Doc 1(Title: Paris) Paris is the capital")
        assert reward == 0.0
    modes = [r.mode for r in tool.engine.requests]
    assert modes == ["useful", "useful", "noisy", "noisy"]  # rows 0-1 are step 0, rows 2-3 step 1
    for request, row in zip(tool.engine.requests, rows):
        create = row["tools_kwargs"][TOOL_NAME]["create_kwargs"]
        assert request.question == create["question"] and request.answers == list(create["golden_answers"])
    assert tool.instances == {}  # released after each call

    response, _, _ = call(rows[0], {"query": "  "})  # a blank query gets a message, not an engine call
    assert "empty" in response.text and len(tool.engine.requests) == 4
