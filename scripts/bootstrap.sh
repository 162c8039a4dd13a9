#!/usr/bin/env bash
# Create .venv (Python 3.11+) with textmend, its development tools and its `ray` extra (the
# backfill tests need it) installed, and the gRPC stubs generated if they are missing. Safe to
# run again: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "textmend needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  python=$(pick_python)
  echo "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi

stamp=.venv/.textmend-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing textmend and its development tools into .venv"
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install --upgrade pip &&
    .venv/bin/python -m pip install -e '.[dev,ray]'; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "installation failed; the full log is in $log" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi

if [ ! -f client/textmend/v1/textmend_pb2.py ]; then
  .venv/bin/python scripts/gen_proto.py
fi
