#!/usr/bin/env bash
# Benchmark: the sandbox balancer's added latency. Starts `shakedown sandbox --arch tiered`,
# then sends the same open-model load (RATE for DURATION) through the balancer and straight
# to one web instance, and prints p50/p99 of both and the difference.
# Usage: bench/lb.sh            (RATE=500/s DURATION=10s by default)
# Not part of the test suite: figures go to BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-500/s}
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
"$SD" load --quiet --results "$work/results" --run-id lb --target "http://127.0.0.1:$PORT" --rate "$RATE" --duration "$DURATION" >/dev/null
"$SD" load --quiet --results "$work/results" --run-id direct --target "http://$direct" --rate "$RATE" --duration "$DURATION" >/dev/null
printf '| path | p50 ms | p99 ms |\n|---|---|---|\n'
printf '| direct to one web instance (%s) | %s | %s |\n' "$direct" "$(p direct p50)" "$(p direct p99)"
printf '| through the balancer | %s | %s |\n' "$(p lb p50)" "$(p lb p99)"
python3 -c "print(f'| balancer overhead | {float(\"$(p lb p50)\")-float(\"$(p direct p50)\"):.3f} | {float(\"$(p lb p99)\")-float(\"$(p direct p99)\"):.3f} |')"
