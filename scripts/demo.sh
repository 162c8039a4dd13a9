#!/usr/bin/env bash
# End to end: start textmend-server on a free loopback port, send the sample article through
# the bundled client, print the diff of what was repaired, stop the server.
# Usage: scripts/demo.sh [FILE] (default: the sample article in tests/fixtures/)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
article=${1:-tests/fixtures/fortune-openai-departures.txt}
workdir=$(mktemp -d)
portfile="$workdir/port"
.venv/bin/textmend-server --host 127.0.0.1 --port 0 --workers 2 --port-file "$portfile" \
  --log-level WARNING &
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  [ -s "$portfile" ] && break
  kill -0 "$server" 2>/dev/null || { echo "textmend-server exited before serving" >&2; exit 1; }
  sleep 0.1
done
target="127.0.0.1:$(cat "$portfile")"
for _ in $(seq 1 100); do
  .venv/bin/textmend health --server "$target" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "textmend-server is serving on $target; repairing $article"
echo
.venv/bin/textmend repair "$article" --server "$target" --format diff
