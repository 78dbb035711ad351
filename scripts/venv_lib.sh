# Sourced by the scripts that keep a venv of their own (setup_vllm.sh, tier_ppo.sh, tier_distributed.sh).
#
#   ensure_venv VENV WANT INSTALL_FUNCTION   create VENV with $PYTHON (default python3) if missing; run
#                                            INSTALL_FUNCTION unless VENV/.rlaif-uu-setup already records WANT
#                                            (then record it)
#   ensure_editable VENV                     install this checkout into VENV, editable and --no-deps, unless
#                                            VENV already imports rlaif_uu from here
#   venv_pip VENV ARGS...                    VENV's pip, minus the warning it prints for every package about
#                                            find-links folders that do not exist

ensure_venv() {
  local venv=$1 want=$2 install=$3
  if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv with ${PYTHON:-python3}"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  if [ "$(cat "$venv/.rlaif-uu-setup" 2>/dev/null)" != "$want" ]; then
    "$install"
    echo "$want" > "$venv/.rlaif-uu-setup"
  fi
}

venv_pip() {
  local venv=$1; shift
  "$venv/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

ensure_editable() {
  local venv=$1
  # -P: the check must not find the package through the current folder
  if ! "$venv/bin/python" -P -c "import rlaif_uu, pathlib, sys; sys.exit(pathlib.Path(rlaif_uu.__file__).resolve().parents[1] != pathlib.Path('$PWD').resolve())" 2>/dev/null; then
    echo "installing rlaif-uu (editable, --no-deps) into $venv"
    venv_pip "$venv" install -q --no-deps -e .
  fi
}
