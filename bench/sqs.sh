#!/usr/bin/env bash
# The sandbox's SQS endpoint through aws-sdk-sqs (examples/sqs_bench.rs): SendMessage/s,
# ReceiveMessage+DeleteMessage msg/s and GetQueueAttributes/s
#   - at depth 0 and over a pre-loaded BACKLOG (default 100,000 messages, SendMessageBatch),
#     REPS alternating repetitions of each: the cost of a call at depth over an empty queue;
#   - against moto_server at depth 0 (MOTO_MESSAGES, kept small: moto is slow).
# Usage: bench/sqs.sh [messages] [concurrency]     (defaults 2000 8)
#        BACKLOG=100000 REPS=3 MOTO_MESSAGES=300 bench/sqs.sh
set -euo pipefail

MESSAGES="${1:-2000}"
CONCURRENCY="${2:-8}"
BACKLOG="${BACKLOG:-100000}"
REPS="${REPS:-3}"
MOTO_MESSAGES="${MOTO_MESSAGES:-300}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/main/target}"
export AWS_EC2_METADATA_DISABLED=true
BIN="$CARGO_TARGET_DIR/release/examples/sqs_bench"
RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT

cd "$ROOT"
cargo build --release --quiet --example sqs_bench

# Runs the benchmark, shows its output and appends its RESULT line to $RESULTS.
run() {
    local output
    output="$("$BIN" "$@")"
    echo "$output"
    grep '^RESULT' <<<"$output" | tail -n 1 >>"$RESULTS"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq 1 "$REPS"); do
    echo "== shakedown (embedded), repetition $rep: depth 0, then a backlog of $BACKLOG =="
    run --embedded "$MESSAGES" "$CONCURRENCY"
    run --embedded "$MESSAGES" "$CONCURRENCY" --backlog "$BACKLOG"
done

if command -v moto_server >/dev/null 2>&1; then
    PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    setsid moto_server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
    MOTO_PID=$!
    trap 'kill -- -"$MOTO_PID" 2>/dev/null || kill "$MOTO_PID" 2>/dev/null || true; rm -f "$RESULTS"' EXIT
    for _ in $(seq 1 300); do
        if curl -fs -X POST "http://127.0.0.1:$PORT/moto-api/reset" >/dev/null 2>&1; then break; fi
        sleep 0.1
    done
    echo "== moto_server, depth 0 =="
    run "http://127.0.0.1:$PORT" "$MOTO_MESSAGES" "$CONCURRENCY"
else
    echo "moto_server not on PATH: no comparison (pip install 'moto[server]')"
fi
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RESULTS" "$LOAD_BEFORE" "$LOAD_AFTER" <<'PY'
import re, statistics, sys
rows = []
for line in open(sys.argv[1]):
    row = dict(re.findall(r"(\w+)=(\S+)", line))
    rows.append(row)
calls = (("send_per_s", "SendMessage"), ("receive_delete_per_s", "Receive+Delete (per msg)"),
         ("attributes_per_s", "GetQueueAttributes"))
def median(target, backlog, key):
    values = [float(r[key]) for r in rows if (r["target"] == "embedded") == (target == "embedded")
              and int(r["backlog"]) == backlog]
    return statistics.median(values) if values else None
backlog = max(int(r["backlog"]) for r in rows)
reps = sum(1 for r in rows if r["target"] == "embedded" and r["backlog"] == "0")
print()
print(f"load average before / after: {sys.argv[2]} / {sys.argv[3]}; medians of {reps} alternating repetitions")
print()
print(f"| call | shakedown, depth 0 | shakedown, depth {backlog:,} | depth / empty (per-call cost) | moto_server, depth 0 | shakedown / moto |")
print("|---|---:|---:|---:|---:|---:|")
for key, label in calls:
    empty, deep, moto = median("embedded", 0, key), median("embedded", backlog, key), median("moto", 0, key)
    cost = lambda per_s: f"{per_s:,.0f}/s ({1e6 / per_s:,.0f} us)"
    ratio = f"{empty / deep:.2f}x" if empty and deep else "-"
    vs_moto = f"{empty / moto:.0f}x" if empty and moto else "-"
    print(f"| {label} | {cost(empty)} | {cost(deep) if deep else '-'} | {ratio} | {cost(moto) if moto else '-'} | {vs_moto} |")
PY
