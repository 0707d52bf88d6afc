#!/usr/bin/env bash
# How often does `shakedown gate` cry wolf? Runs one experiment N times, identically (same
# file, same seed, same build), then gates every run against every other (all ordered
# pairs) and counts the gates that failed: each is a false alarm, since nothing changed.
# Also reports the rate against the first run alone (N - 1 comparisons, as a CI gating each
# build against one stored baseline would see them).
#
# Usage: bench/gate-false-alarm.sh [-n N] [-e EXPERIMENT] [-m SPEC] [-o DIR] [-r]
#   -n N        runs (default 10)
#   -e FILE     the experiment (default tests/experiments/gate.toml: 13 s against the
#               sandbox's monolith)
#   -m SPEC     --max-regression for the gate (default: the gate's own default)
#   -o DIR      where runs and tallies go (default: a new results/bench-gate-* directory)
#   -r          reuse the runs already in DIR (only gate again)
# Runs one at a time (the gate measures latency: overlapping runs would share the cores).
# Uses the release binary (<cargo's target dir>/release/shakedown; SHAKEDOWN_BIN overrides),
# building it if missing, and copies it first. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

N=10
EXPERIMENT=tests/experiments/gate.toml
SPEC=
OUT=
REUSE=0
while getopts "n:e:m:o:r" opt; do
  case $opt in
    n) N=$OPTARG ;;
    e) EXPERIMENT=$OPTARG ;;
    m) SPEC=$OPTARG ;;
    o) OUT=$OPTARG ;;
    r) REUSE=1 ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
  esac
done
OUT=${OUT:-results/bench-gate-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/runs"

BIN=${SHAKEDOWN_BIN:-}
if [ -z "$BIN" ]; then
  TARGET=${CARGO_TARGET_DIR:-target}
  [ -x "$TARGET/release/shakedown" ] || cargo build --release --quiet
  BIN=$TARGET/release/shakedown
fi
cp "$BIN" "$OUT/shakedown"
BIN=$OUT/shakedown
export AWS_EC2_METADATA_DISABLED=true

if [ "$REUSE" = 0 ]; then
  for i in $(seq 1 "$N"); do
    # Bounded: a run is ~20 s; one that hangs is killed after 120 s.
    if timeout 120 "$BIN" run "$EXPERIMENT" --results "$OUT/runs" --run-id "r$i" --quiet \
        > "$OUT/runs/r$i.log" 2>&1; then
      echo "run r$i: ok"
    else
      echo "run r$i: exit $? (kept, see $OUT/runs/r$i.log)"
    fi
  done
fi

RUNS=$(cd "$OUT/runs" && ls -d r*/ | tr -d / | sort -V)
GATE_ARGS=()
[ -n "$SPEC" ] && GATE_ARGS=(--max-regression "$SPEC")
pairs=0; alarms=0; errors=0; first_pairs=0; first_alarms=0
: > "$OUT/alarms.txt"
FIRST=$(echo "$RUNS" | head -n 1)
for a in $RUNS; do
  for b in $RUNS; do
    [ "$a" = "$b" ] && continue
    set +e
    "$BIN" gate "$OUT/runs/$a" --baseline "$OUT/runs/$b" "${GATE_ARGS[@]}" > "$OUT/gate-$a-vs-$b.txt" 2>&1
    code=$?
    set -e
    pairs=$((pairs + 1))
    [ "$b" = "$FIRST" ] && first_pairs=$((first_pairs + 1))
    case $code in
      0) ;;
      1) alarms=$((alarms + 1))
         [ "$b" = "$FIRST" ] && first_alarms=$((first_alarms + 1))
         { echo "$a vs $b:"; grep -E 'REGRESSION|^gate:' "$OUT/gate-$a-vs-$b.txt"; } >> "$OUT/alarms.txt" ;;
      *) errors=$((errors + 1)); echo "gate $a vs $b: exit $code (see $OUT/gate-$a-vs-$b.txt)" ;;
    esac
  done
done
{
  echo "experiment: $EXPERIMENT, runs: $(echo "$RUNS" | wc -w), spec: ${SPEC:-default}"
  echo "all ordered pairs: $alarms false alarm(s) in $pairs gates ($(awk "BEGIN{printf \"%.1f\", 100*$alarms/($pairs>0?$pairs:1)}")%), $errors error(s)"
  echo "against the first run: $first_alarms false alarm(s) in $first_pairs gates"
  echo "metrics that alarmed:"
  grep -h 'REGRESSION' "$OUT"/gate-*.txt 2>/dev/null | awk '{print $1, $2}' | sort | uniq -c || true
} | tee "$OUT/tally.txt"
