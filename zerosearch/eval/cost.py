"""Money for a run's searches: a paid search API (price per 1k queries) vs GPU time for the simulator.

The paper's Table 8 compares, for one RL training run of about 64k searches, Google via SerpAPI ($586.70)
with a 14B simulator on four A100 GPUs ($70.80). `PAPER` holds those inputs. Sourced from the paper (and
repeated in its press coverage): 64,000 searches, SerpAPI, four A100s, the two totals. Not found in the
public material we could read, so derived to reproduce the totals (marked "derived" in the report): the API
price per 1k queries (586.70 / 64 = $9.1671875, in line with SerpAPI's ~$9.17/1k plan rate) and the split of
$70.80 into 12 hours × $1.475 per A100-hour × 4 GPUs.

A run's counts come from the RL trainer's run directory: `metrics.jsonl` has one line per step with `searches`
(the mean per trajectory), `engine_s` (the engine meter's seconds in that step) and `step_s`; `config.yaml`
gives the trajectories per step (rl.prompts_per_step × rl.samples_per_prompt). GPU-hours are the summed step
time × the simulator's GPU count (the GPUs are held for the whole run, as in the paper's accounting).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from zerosearch.errors import UserError

PAPER_API_TOTAL, PAPER_GPU_TOTAL = 586.70, 70.80


@dataclass
class CostInputs:
    searches: int
    api_price_per_1k: float = PAPER_API_TOTAL / 64  # SerpAPI-like default (the paper's rate)
    gpu_hours: float = 0.0  # wall-clock hours the simulator's GPUs are held
    gpu_count: int = 1
    gpu_price_per_hour: float = PAPER_GPU_TOTAL / (4 * 12)  # an A100-hour at the paper's rate

    def __post_init__(self):
        for name in ("searches", "api_price_per_1k", "gpu_hours", "gpu_count", "gpu_price_per_hour"):
            if getattr(self, name) < 0:
                raise UserError(f"cost input {name} must be >= 0, got {getattr(self, name)!r}")


PAPER = CostInputs(
    searches=64_000,
    api_price_per_1k=PAPER_API_TOTAL / 64,
    gpu_hours=12.0,
    gpu_count=4,
    gpu_price_per_hour=PAPER_GPU_TOTAL / 48,
)
PAPER_SOURCES = {
    "searches": "paper (Table 8: ~64k training searches)",
    "api_price_per_1k": "derived: $586.70 / 64k searches (SerpAPI, Google search)",
    "gpu_hours": "derived (assumed training time; the paper's hours were not found)",
    "gpu_count": "paper (SFT-14B simulator on 4 × A100)",
    "gpu_price_per_hour": "derived: $70.80 / (4 GPUs × 12 h)",
}


def cost_report(inputs: CostInputs, sources: dict[str, str] | None = None, counts: dict | None = None) -> dict:
    api = inputs.searches / 1000 * inputs.api_price_per_1k
    gpu = inputs.gpu_hours * inputs.gpu_count * inputs.gpu_price_per_hour
    report = {
        "inputs": asdict(inputs),
        "api_cost": round(api, 2),
        "gpu_cost": round(gpu, 2),
        "saving": round(api - gpu, 2),
        "saving_pct": round(100 * (api - gpu) / api, 1) if api else None,
    }
    if sources:
        report["sources"] = sources
    if counts:
        report["counts"] = counts
    return report


def run_counts(run_dir: str | Path) -> dict:
    """Totals of a training run from its per-step log (see module doc): searches, engine seconds, wall time."""
    import yaml

    from zerosearch.config import load_yaml

    run = Path(run_dir)
    metrics, config = run / "metrics.jsonl", run / "config.yaml"
    if not metrics.exists():
        raise UserError(f"no metrics.jsonl in {run} (give a training run directory, or --searches and --gpu-hours)")
    try:
        rl = (load_yaml(config.read_text()) or {}).get("rl", {}) if config.exists() else {}
        per_step = int(rl["prompts_per_step"]) * int(rl["samples_per_prompt"])
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError):
        raise UserError(f"{config}: needs rl.prompts_per_step and rl.samples_per_prompt (the run's config)") from None
    totals = {"steps": 0, "searches": 0.0, "engine_seconds": 0.0, "wall_seconds": 0.0}
    with metrics.open() as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                totals["searches"] += float(row["searches"]) * per_step
                totals["engine_seconds"] += float(row.get("engine_s", 0.0))
                totals["wall_seconds"] += float(row.get("step_s", 0.0))
                totals["steps"] += 1
            except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
                raise UserError(f"{metrics}:{n}: not a JSON object of numbers") from None
            except KeyError as e:
                raise UserError(f"{metrics}:{n}: no {e.args[0]!r} field (searches per trajectory)") from None
    if not totals["steps"]:
        raise UserError(f"{metrics}: no finished step yet")
    totals["searches"] = round(totals["searches"])
    return totals
