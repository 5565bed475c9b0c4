#!/usr/bin/env bash
# ZeroSearch with verl 0.9 (GRPO, vLLM rollouts, our search tool and curriculum); see docs/integrations.md.
# 1. data:       python examples/verl/make_data.py --train TRAIN --val VAL --batch-size 64 --steps 203 --out data/verl
# 2. simulator:  zerosearch serve --engine simulator --port 8000 \
#                  --set engine.simulator_model=sunhaonlp/Simulation_LLM_google_14B_V2 --set engine.simulator_prompt=sft
# 3. this script (on the training node; set N_GPUS and MODEL).
set -euo pipefail
MODEL=${MODEL:-Qwen/Qwen2.5-3B-Instruct}
N_GPUS=${N_GPUS:-8}
HERE=$(cd "$(dirname "$0")" && pwd)

python -m verl.trainer.main_ppo \
  algorithm.adv_estimator=grpo \
  data.train_files=data/verl/train.parquet \
  data.val_files=data/verl/val.parquet \
  data.train_batch_size=64 \
  data.shuffle=False \
  data.max_prompt_length=512 \
  data.max_response_length=3072 \
  data.return_raw_chat=True \
  actor_rollout_ref.model.path="$MODEL" \
  actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.actor.ppo_mini_batch_size=64 \
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
  actor_rollout_ref.actor.use_kl_loss=True \
  actor_rollout_ref.actor.kl_loss_coef=0.001 \
  actor_rollout_ref.actor.kl_loss_type=low_var_kl \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.mode=async \
  actor_rollout_ref.rollout.n=5 \
  actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
  actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8 \
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8 \
  actor_rollout_ref.rollout.agent.default_agent_loop=tool_agent \
  actor_rollout_ref.rollout.multi_turn.enable=True \
  actor_rollout_ref.rollout.multi_turn.format=hermes \
  actor_rollout_ref.rollout.multi_turn.max_assistant_turns=5 \
  actor_rollout_ref.rollout.multi_turn.max_tool_response_length=2048 \
  actor_rollout_ref.rollout.multi_turn.tool_config_path="$HERE/search_tool.yaml" \
  reward.custom_reward_function.path="$(python -c 'import zerosearch.integrations.verl as m; print(m.__file__)')" \
  reward.custom_reward_function.name=compute_score \
  trainer.total_training_steps=203 \
  trainer.n_gpus_per_node="$N_GPUS" \
  trainer.nnodes=1 \
  trainer.save_freq=20 \
  trainer.test_freq=20 \
  trainer.logger='["console"]' \
  trainer.project_name=zerosearch \
  trainer.experiment_name=zerosearch-grpo \
  "$@"
