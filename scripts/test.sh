#!/usr/bin/env bash
# The whole test suite: stubs current, lint clean, then pytest (unit, doctests, and service
# tests against a real server on a loopback port). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# The HTML report is checked in a real browser. CI installs Debian's Chromium; elsewhere the
# browser test is skipped when no chromium is installed.
if [ -n "${CI:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the report test"
    { apt-get update && apt-get install -y --no-install-recommends chromium; } \
      >.venv/apt.log 2>&1 || { tail -n 20 .venv/apt.log >&2; exit 1; }
  fi
fi
.venv/bin/python scripts/gen_proto.py --check
.venv/bin/ruff check .
.venv/bin/ruff format --check .
mkdir -p test-artifacts
.venv/bin/python -m pytest "$@"
