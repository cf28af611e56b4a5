#!/usr/bin/env bash
# Runs an official MCP client's scenario against a Huddle /mcp endpoint.
#
#   tests/mcp/run.sh ts http://127.0.0.1:PORT/mcp   # @modelcontextprotocol/sdk (package-lock.json)
#   tests/mcp/run.sh py http://127.0.0.1:PORT/mcp   # PyPI mcp (requirements.txt), in tests/mcp/.venv
#
# The clients are installed by `make test-deps` (tests/mcp/deps.sh), never from here.
# Without them this fails (exit 2): the suite must not pass without having run them.
set -euo pipefail
cd "$(dirname "$0")"
kind=${1:?usage: run.sh ts|py URL}
url=${2:?usage: run.sh ts|py URL}

./deps.sh check
case "$kind" in
  ts) exec node scenario.mjs "$url" ;;
  py) exec .venv/bin/python scenario.py "$url" ;;
  *)
    echo "run.sh: unknown client '$kind' (ts or py)" >&2
    exit 2
    ;;
esac
