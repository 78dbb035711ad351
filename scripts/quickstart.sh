#!/usr/bin/env bash
# The quickstart: the whole RLAIF loop on CPU with offline models and data (about 40 minutes on 2 cores after setup):
#   label -> gold -> refine -> reward export -> eval before -> online DPO on SmolLM2-135M-Instruct -> eval after -> compare.
# Arguments go to `rlaif-uu run`:  bash scripts/quickstart.sh --out runs/qs_3it align.dpo.iterations=3
# A rerun resumes: finished stages whose settings did not change are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec .venv/bin/rlaif-uu run recipes/quickstart.yaml "$@"
