#!/usr/bin/env bash
# The official MCP clients the tests drive, at the versions pinned here
# (package-lock.json, requirements.txt).
#
#   tests/mcp/deps.sh install   # install what is missing or stale (`make test-deps`)
#   tests/mcp/deps.sh check     # exit 2, naming what is missing, unless both are in place
#
# Installing happens only here, never from inside `cargo test`: run.sh only checks.
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:?usage: deps.sh install|check}

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "deps.sh: '$1' is required for the MCP client tests" >&2; exit 2; }
}

ts_ok() {
  local want have
  want=$(node -p "require('./package.json').dependencies['@modelcontextprotocol/sdk']")
  have=$(node -p "try { require('./node_modules/@modelcontextprotocol/sdk/package.json').version } catch (e) { '' }")
  [ "$have" = "$want" ]
}

py_ok() {
  local want have
  want=$(sed -n 's/^mcp==//p' requirements.txt)
  have=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('mcp'))" 2>/dev/null || true)
  [ "$have" = "$want" ]
}

need node
need npm
need python3
case "$mode" in
  install)
    if ! ts_ok; then
      echo "deps.sh: installing @modelcontextprotocol/sdk (npm ci)" >&2
      npm ci --no-audit --no-fund --loglevel=error >&2
    fi
    if ! py_ok; then
      echo "deps.sh: installing $(cat requirements.txt) into tests/mcp/.venv" >&2
      rm -rf .venv
      python3 -m venv .venv
      .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
    fi
    ;;
  check)
    missing=()
    ts_ok || missing+=("@modelcontextprotocol/sdk (tests/mcp/node_modules)")
    py_ok || missing+=("PyPI mcp (tests/mcp/.venv)")
    if [ ${#missing[@]} -gt 0 ]; then
      echo "deps.sh: not installed: ${missing[*]}; run \`make test-deps\`" >&2
      exit 2
    fi
    ;;
  *)
    echo "deps.sh: unknown mode '$mode' (install or check)" >&2
    exit 2
    ;;
esac
