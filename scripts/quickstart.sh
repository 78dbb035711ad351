#!/usr/bin/env bash
# The quickstart: the whole pipeline on CPU with offline models and data (about 20 minutes on 2 cores after setup):
#   label -> refine -> reward export -> eval before -> GRPO on SmolLM2-135M-Instruct -> eval after -> compare.
# Arguments go to `rlaif-uu run`:  bash scripts/quickstart.sh --out runs/qs_long align.steps=60
# A rerun resumes: finished stages whose settings did not change are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec .venv/bin/rlaif-uu run recipes/quickstart.yaml "$@"
