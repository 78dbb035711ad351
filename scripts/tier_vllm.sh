#!/usr/bin/env bash
# The vLLM test tier (engine judge on SmolLM2, and the HTTP judge against a real vLLM server on loopback):
#
#   bash scripts/tier_vllm.sh              # sets up .venv-vllm if needed, then runs tests/vllm (~5 min on 2 cores)
#   bash scripts/tier_vllm.sh -k engine    # extra arguments go to pytest
#
# Needs `bash scripts/setup.sh` first (the SmolLM2 folder in the asset cache).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_vllm.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
.venv-vllm/bin/python -m pytest -q -m vllm tests/vllm "$@"
