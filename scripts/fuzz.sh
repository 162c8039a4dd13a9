#!/usr/bin/env bash
# Fuzz the repair engine for a bounded time: scripts/fuzz.sh [SECONDS] (default 60).
#
# Runs fuzz/fuzz_engine.py under atheris at low priority on one core, with a corpus kept in
# fuzz/results/corpus across runs. A failure (an exception other than the documented input
# errors, or a broken invariant) is saved under fuzz/results/<run>/crashes/ and fuzzing
# restarts until the time is up or MAX_FAILURES (default 10) failures were found. Known
# issues (see KNOWN_ISSUES in fuzz/fuzz_engine.py) are tallied, not counted as failures; the
# first example of each is written to the run's directory. Prints one summary line:
#
#     executions=N failures=M seconds=S
#
# and appends it, time-stamped, to fuzz/results/history.tsv. `scripts/fuzz.sh --history`
# prints the runs recorded there and their totals; `scripts/fuzz.sh --coverage [SAMPLE]` how
# much of the engine the corpus reaches (the server layers, which the target does not call,
# left out).
#
# Stopping it early (Ctrl-C, SIGTERM) still counts and records what ran. Extra arguments
# after SECONDS go to libFuzzer (for example -max_len=256).
set -euo pipefail
# Read whole before it runs (a brace group is parsed entirely first): editing the script while
# a fuzzer runs must not change what the running copy does next.
{
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--history" ]; then
  history=fuzz/results/history.tsv
  if [ ! -s "$history" ]; then
    echo "no fuzz runs recorded yet ($history)" >&2
    exit 1
  fi
  cat "$history"
  awk -F'[\t ]+' '{
      for (k = 2; k <= NF; k++) { split($k, kv, "="); sum[kv[1]] += kv[2] }
      runs++
    }
    END { printf "total: runs=%d executions=%d failures=%d seconds=%d\n",
          runs, sum["executions"], sum["failures"], sum["seconds"] }' "$history"
  exit 0
fi

if [ "${1:-}" = "--coverage" ]; then
  # What the corpus reaches: each input (or a sample of SAMPLE of them) run once, without
  # the fuzzer, under coverage.py; lines and branches of the engine, the least covered first.
  sample=${2:-1000}
  .venv/bin/python -m coverage --version >/dev/null 2>&1 \
    || { echo "coverage.py is not installed: pip install -e '.[fuzz]'" >&2; exit 1; }
  data=fuzz/results/.coverage
  .venv/bin/python -m coverage run --data-file="$data" --branch \
    --source=server/textmend_server \
    --omit='server/textmend_server/main.py,server/textmend_server/options.py,server/textmend_server/service.py,server/textmend_server/servicer.py,server/textmend_server/convert.py,server/textmend_server/limits.py,server/textmend_server/turns.py,server/textmend_server/admission.py,server/textmend_server/interceptors.py,server/textmend_server/testing.py,server/textmend_server/metrics.py,server/textmend_server/config.py' \
    fuzz/fuzz_engine.py --replay fuzz/results/corpus --sample "$sample"
  .venv/bin/python -m coverage report --data-file="$data" --sort=cover --show-missing
  exit 0
fi

seconds=${1:-60}
shift || true
max_failures=${MAX_FAILURES:-10}
python=.venv/bin/python
results=fuzz/results
run="$results/$(date -u +%Y%m%dT%H%M%SZ)"
corpus="$results/corpus"
mkdir -p "$run/crashes" "$corpus"

if [ -z "$(ls -A "$corpus")" ]; then
  "$python" - "$corpus" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "fuzz")
from fuzz_engine import seed_corpus

for k, content in enumerate(seed_corpus()):
    # Mode 0 (raw bytes) under the default charset, content type and policy, then content.
    Path(sys.argv[1], f"seed-{k}").write_bytes(b"\x00\x00\x00\x00" + content)
PY
fi

export TEXTMEND_FUZZ_RESULTS="$run"
executions=0
failures=0
started=$(date +%s)
attempt=0
stopped=0
child=
# Stopped early (Ctrl-C, kill): end the fuzzer and still count and record what ran.
trap 'stopped=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' INT TERM
while :; do
  elapsed=$(( $(date +%s) - started ))
  remaining=$(( seconds - elapsed ))
  if [ "$stopped" -eq 1 ] || [ "$remaining" -le 0 ] || [ "$failures" -ge "$max_failures" ]; then
    break
  fi
  attempt=$((attempt + 1))
  log="$run/fuzz-$attempt.log"
  status=0
  nice -n 10 "$python" fuzz/fuzz_engine.py "$corpus" \
    -max_total_time="$remaining" -max_len=1024 -timeout=300 -rss_limit_mb=4096 \
    -artifact_prefix="$run/crashes/" -print_final_stats=1 "$@" >"$log" 2>&1 &
  child=$!
  wait "$child" || status=$?
  # A signal interrupts the first wait; the second collects the fuzzer's own exit.
  if [ "$stopped" -eq 1 ]; then
    wait "$child" 2>/dev/null || true
    status=0
  fi
  child=
  # libFuzzer's progress lines start with #N (at powers of two and on news); "Done N runs"
  # closes a clean run and the final stats give the exact count, interrupted runs included.
  # An attempt stopped while still loading has no such line yet: it ran nothing.
  ran=$(grep -aoE '^#[0-9]+|Done [0-9]+ runs|number_of_executed_units: *[0-9]+' "$log" \
    | grep -oE '[0-9]+' | sort -n | tail -1 || true)
  executions=$((executions + ${ran:-0}))
  if [ "$status" -ne 0 ]; then
    failures=$((failures + 1))
    echo "failure $failures (exit $status), see $log" >&2
  fi
done

elapsed=$(( $(date +%s) - started ))
summary="executions=$executions failures=$failures seconds=$elapsed"
echo "$summary run=$run" >"$run/summary.txt"
printf '%s\t%s\n' "$(date -u +%FT%TZ)" "$summary" >>"$results/history.tsv"
echo "$summary"
exit 0
}
