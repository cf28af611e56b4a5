#!/usr/bin/env bash
# Runs an official MCP client's scenario against a Huddle /mcp endpoint, installing the
# client first (npm registry / PyPI, pinned versions) when it is missing or stale.
#
#   tests/mcp/run.sh ts http://127.0.0.1:PORT/mcp   # @modelcontextprotocol/sdk (package-lock.json)
#   tests/mcp/run.sh py http://127.0.0.1:PORT/mcp   # PyPI mcp (requirements.txt), in tests/mcp/.venv
#
# Needs node + npm, and python3 with venv. Without them it fails (exit 2): the suite
# must not pass without having run the real clients.
set -euo pipefail
cd "$(dirname "$0")"
kind=${1:?usage: run.sh ts|py URL}
url=${2:?usage: run.sh ts|py URL}

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "run.sh: '$1' is required to run the $kind MCP client tests" >&2; exit 2; }
}

case "$kind" in
  ts)
    need node
    need npm
    want=$(node -p "require('./package.json').dependencies['@modelcontextprotocol/sdk']")
    have=$(node -p "try { require('./node_modules/@modelcontextprotocol/sdk/package.json').version } catch (e) { '' }")
    if [ "$have" != "$want" ]; then
      echo "run.sh: installing @modelcontextprotocol/sdk@$want" >&2
      npm ci --no-audit --no-fund --loglevel=error >&2
    fi
    exec node scenario.mjs "$url"
    ;;
  py)
    need python3
    want=$(sed -n 's/^mcp==//p' requirements.txt)
    have=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('mcp'))" 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
      echo "run.sh: installing mcp==$want into tests/mcp/.venv" >&2
      rm -rf .venv
      python3 -m venv .venv
      .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
    fi
    exec .venv/bin/python scenario.py "$url"
    ;;
  *)
    echo "run.sh: unknown client '$kind' (ts or py)" >&2
    exit 2
    ;;
esac
