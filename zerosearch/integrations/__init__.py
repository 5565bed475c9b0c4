"""Our simulator, engines, rollout and curriculum inside other RL frameworks: TRL's GRPOTrainer (`trl.py`) and
verl's tool interface (`verl.py`). Each module imports its framework lazily; see docs/integrations.md."""
