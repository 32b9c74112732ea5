# Shared by the static checks: a Python venv under .local/ for pinned tools, created once.
# Usage: source lib/venv.sh; ensure_pip_tool <binary> <pip requirement> [pip options...]
VENV=${CHECKS_VENV:-$ROOT/.local/checks-venv}

ensure_pip_tool() {
  local bin=$1 req=$2; shift 2
  local stamp="$VENV/.installed-${req//[^A-Za-z0-9._=-]/_}"
  [[ -x $VENV/bin/$bin && -f $stamp ]] && return 0
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" \
    || { echo "cannot create $VENV: install python3-venv" >&2; return 1; }
  echo "installing $req into $VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "$@" "$req" >&2
  touch "$stamp"
}
