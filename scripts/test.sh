#!/usr/bin/env bash
# The whole test suite: stubs current, lint clean, then pytest (unit, doctests, and service
# tests against a real server on a loopback port). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/python scripts/gen_proto.py --check
.venv/bin/ruff check .
.venv/bin/ruff format --check .
mkdir -p test-artifacts
.venv/bin/python -m pytest "$@"
