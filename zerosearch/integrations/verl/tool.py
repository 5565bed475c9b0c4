"""`ZeroSearchTool`: a verl `BaseTool` answered by a zerosearch engine, conditioned on each sample's question and
gold answers (verl's per-sample `create_kwargs`), useful/noisy by the curriculum (see docs/integrations.md)."""

from __future__ import annotations

import asyncio
import random
from typing import Any
from uuid import uuid4

from zerosearch import prompts
from zerosearch.config import CurriculumConfig, EngineConfig, from_dict
from zerosearch.curriculum import schedule
from zerosearch.engines.base import SearchRequest
from zerosearch.errors import ConfigError
from zerosearch.integrations.verl import SCHEMA

try:
    from verl.tools.base_tool import BaseTool
    from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse
except ImportError as e:  # verl is optional: its own install pins a narrower transformers than ours
    raise ImportError(
        "zerosearch.integrations.verl.tool needs verl: pip install --no-deps verl==0.9.1 && "
        "pip install ray 'tensordict>=0.8,<=0.10' codetiming hydra-core cachetools (see docs/integrations.md)"
    ) from e


class ZeroSearchTool(BaseTool):
    """A verl tool backed by a zerosearch engine. Its `config` (the tool yaml's `config:`):

    - `engine`: EngineConfig fields (`name`, `corpus`, `urls`, `simulator_model`, …), as in our recipes;
    - `curriculum`: CurriculumConfig fields plus `total_steps` (m of Eq. 1); leave it out for useful documents
      always (a real engine ignores the mode anyway);
    - `seed`: of the useful/noisy draws.
    """

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None):
        super().__init__(config, tool_schema or OpenAIFunctionToolSchema.model_validate(SCHEMA))
        from zerosearch.engines import make_engine

        self.engine_config = from_dict(EngineConfig, dict(config.get("engine") or {}), prefix="engine.")
        self.engine = make_engine(self.engine_config)
        self.noise = None
        curriculum = dict(config.get("curriculum") or {})
        if curriculum:
            total = curriculum.pop("total_steps", None)
            if not isinstance(total, int) or total <= 0:
                raise ConfigError(f"curriculum.total_steps must be an integer > 0, got {total!r}")
            c = from_dict(CurriculumConfig, curriculum, prefix="curriculum.")
            self.noise = schedule(c.schedule, total, c.p_start, c.p_end, c.base)
        self.draws = random.Random(config.get("seed", 0))
        self.instances: dict[str, dict] = {}

    def p_noisy(self, step: int | None) -> float:
        if self.noise is None or step is None:
            return 0.0
        return self.noise[min(int(step), len(self.noise) - 1)]

    async def create(self, instance_id: str | None = None, **kwargs) -> tuple[str, ToolResponse]:
        instance_id = instance_id or str(uuid4())
        self.instances[instance_id] = dict(kwargs.get("create_kwargs") or {})
        return instance_id, ToolResponse()

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs) -> tuple[ToolResponse, float, dict]:
        sample = self.instances.get(instance_id, {})
        query = str(parameters.get("query") or "").strip()
        if not query:
            return ToolResponse(text="The search query is empty: give a query."), 0.0, {"search_empty": 1}
        mode = "noisy" if self.draws.random() < self.p_noisy(sample.get("step")) else "useful"
        request = SearchRequest(
            query,
            k=self.engine_config.k,
            question=sample.get("question"),
            answers=[str(a) for a in sample.get("golden_answers", [])],  # a list, or an array from parquet
            mode=mode,
        )
        # Engines are synchronous (a model forward, an HTTP call): keep verl's event loop free meanwhile.
        docs = (await asyncio.to_thread(self.engine.search, [request]))[0]
        return ToolResponse(text=prompts.format_documents(docs)), 0.0, {"search_noisy": int(mode == "noisy")}

    async def release(self, instance_id: str, **kwargs) -> None:
        self.instances.pop(instance_id, None)
