#!/usr/bin/env bash
# Throughput of shakedown's embedded SQS endpoint vs moto_server, both through aws-sdk-sqs
# on this machine. Usage: bench/sqs.sh [messages] [concurrency]   (defaults 500 8)
# moto slows down as its queue grows, so keep the message count small.
set -euo pipefail

MESSAGES="${1:-500}"
CONCURRENCY="${2:-8}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/main/target}"
BIN="$CARGO_TARGET_DIR/release/examples/sqs_bench"

cd "$ROOT"
cargo build --release --example sqs_bench

result() { grep '^RESULT' | tail -n 1; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

echo "== shakedown (embedded) =="
OURS="$("$BIN" --embedded "$MESSAGES" "$CONCURRENCY" | tee /dev/stderr | result)"

if ! command -v moto_server >/dev/null 2>&1; then
    echo "moto_server not on PATH: skipping the comparison (pip install 'moto[server]')"
    exit 0
fi

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
setsid moto_server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
MOTO_PID=$!
trap 'kill -- -"$MOTO_PID" 2>/dev/null || kill "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    if curl -fs -X POST "http://127.0.0.1:$PORT/moto-api/reset" >/dev/null 2>&1; then break; fi
    sleep 0.1
done

echo "== moto_server =="
MOTO="$("$BIN" "http://127.0.0.1:$PORT" "$MESSAGES" "$CONCURRENCY" | tee /dev/stderr | result)"

python3 - "$OURS" "$MOTO" <<'PY'
import re, sys
def parse(line):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)}
ours, moto = parse(sys.argv[1]), parse(sys.argv[2])
for key, label in (("send_per_s", "SendMessage/s"), ("receive_delete_per_s", "Receive+Delete msg/s")):
    print(f"{label:>22}: shakedown {ours[key]:9.1f}   moto {moto[key]:9.1f}   ratio {ours[key] / moto[key]:6.1f}x")
PY
