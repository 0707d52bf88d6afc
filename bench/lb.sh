#!/usr/bin/env bash
# Benchmark: the sandbox balancer's added latency. Starts `shakedown sandbox --arch tiered`,
# then sends the same open-model load (RATE for DURATION) through the balancer and straight
# to one web instance, REPS alternating repetitions, and prints the median p50/p99 of both
# and the difference (issue 15's goal: under 200 us p99 at 5,000/s).
# Usage: bench/lb.sh            (RATE=5000/s DURATION=10s REPS=3 by default)
# Not part of the test suite: figures go to BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-5000/s}
REPS=${REPS:-3}
DURATION=${DURATION:-10s}
PORT=${PORT:-18110}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SD=$TARGET_DIR/release/shakedown
work=$(mktemp -d)
cargo build --release --quiet --bin shakedown
"$SD" sandbox --arch tiered --port "$PORT" --print-endpoints json >"$work/endpoints.json" 2>"$work/sandbox.log" &
sandbox=$!
trap 'kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -s "$work/endpoints.json" ] && break; sleep 0.1; done
control=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['control_url'])" "$work/endpoints.json")
for _ in $(seq 1 100); do
  direct=$(curl -s "$control/targets" | python3 -c "import json,sys; t=[x for x in json.load(sys.stdin)['targets'] if x['state']=='healthy']; print(t[0]['addr'] if t else '')")
  [ -n "$direct" ] && break; sleep 0.1
done
p() { python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary'][0]; print(s['latency_ms'][sys.argv[2]])" "$work/results/$1/run.json" "$2"; }
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
# A short warm-up of both paths (connections, caches), not measured.
"$SD" load --quiet --results "$work/results" --run-id warm-lb --target "http://127.0.0.1:$PORT" --rate "$RATE" --duration 2s >/dev/null
"$SD" load --quiet --results "$work/results" --run-id warm-direct --target "http://$direct" --rate "$RATE" --duration 2s >/dev/null
: >"$work/rows"
for rep in $(seq 1 "$REPS"); do
  "$SD" load --quiet --results "$work/results" --run-id "lb-$rep" --target "http://127.0.0.1:$PORT" --rate "$RATE" --duration "$DURATION" >/dev/null
  "$SD" load --quiet --results "$work/results" --run-id "direct-$rep" --target "http://$direct" --rate "$RATE" --duration "$DURATION" >/dev/null
  echo "RESULT rep=$rep direct_p50=$(p "direct-$rep" p50) direct_p99=$(p "direct-$rep" p99) lb_p50=$(p "lb-$rep" p50) lb_p99=$(p "lb-$rep" p99)" | tee -a "$work/rows"
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/rows" "$RATE" "$DURATION" "$direct" "$LOAD_BEFORE" "$LOAD_AFTER" <<'PY'
import re, statistics, sys
rows = [{k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", l)} for l in open(sys.argv[1])]
med = lambda k: statistics.median(r[k] for r in rows)
over50 = statistics.median(r["lb_p50"] - r["direct_p50"] for r in rows)
over99 = statistics.median(r["lb_p99"] - r["direct_p99"] for r in rows)
print()
print(f"{sys.argv[2]} for {sys.argv[3]}, medians of {len(rows)} alternating repetitions; load average before / after: {sys.argv[5]} / {sys.argv[6]}")
print()
print("| path | p50 ms | p99 ms |")
print("|---|---:|---:|")
print(f"| direct to one web instance ({sys.argv[4]}) | {med('direct_p50'):.3f} | {med('direct_p99'):.3f} |")
print(f"| through the balancer | {med('lb_p50'):.3f} | {med('lb_p99'):.3f} |")
ok = "met" if over99 < 0.2 else "NOT met"
print(f"| **balancer overhead** (median of the per-repetition differences) | {over50:.3f} | {over99:.3f} (goal < 0.200: {ok}) |")
PY
