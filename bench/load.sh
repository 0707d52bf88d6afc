#!/usr/bin/env bash
# Benchmark: shakedown vs wrk vs oha against one local nginx (1 worker), in one run.
#   closed loop: max requests/s at the same connection count, and peak RSS;
#   open model: accuracy at 50% and 90% of shakedown's closed-loop max
#               (achieved/intended rate, send lag p99);
#   uploads: peak RSS for 50 concurrent 100 MiB uploads (shared-buffer bodies).
# Needs: nginx and wrk (apt-get install nginx-light wrk), oha (cargo install oha --locked).
# Usage: bench/load.sh            (CONNS=64 DURATION=10 by default)
# Not part of the test suite: figures go to BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-64}
DURATION=${DURATION:-10}
PORT=${PORT:-18089}
SINK_PORT=${SINK_PORT:-18090}
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) $(cat "$work/sink.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

for tool in nginx wrk oha python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (see the header of $0)"; exit 2; }
done
cargo build --release --quiet --bin shakedown --example sink
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SD=$TARGET_DIR/release/shakedown

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$PORT; location / { return 200 "ok\n"; } }
}
NGINX
nginx -c "$work/nginx.conf"
sleep 0.5
URL="http://127.0.0.1:$PORT/"

rss() { grep MAXRSS_KB "$1" | awk '{printf "%.1f", $2/1024}'; }

echo "== closed loop: $CONNS connections, ${DURATION}s, target nginx (1 worker)"
python3 bench/maxrss.py wrk -t1 -c"$CONNS" -d"${DURATION}s" "$URL" >"$work/wrk.out" 2>"$work/wrk.err"
wrk_rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
python3 bench/maxrss.py oha -c "$CONNS" -z "${DURATION}s" --no-tui --output-format json "$URL" >"$work/oha.out" 2>"$work/oha.err"
oha_rps=$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['summary']['requestsPerSec'],1))" "$work/oha.out")
run_sd() { # name, args...
  local name=$1; shift
  python3 bench/maxrss.py "$SD" "$@" --quiet --results "$work/results" --run-id "$name" >"$work/$name.out" 2>"$work/$name.err"
}
summary() { # run name, json key
  python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary'][0]; print(eval(sys.argv[2], {}, s))" "$work/results/$1/run.json" "$2"
}
run_sd closed1 --threads 1 load --target "$URL" --concurrency "$CONNS" --duration "${DURATION}s"
run_sd closed2 load --target "$URL" --concurrency "$CONNS" --duration "${DURATION}s"
sd1=$(summary closed1 "round(sent_per_s,1)")
sd2=$(summary closed2 "round(sent_per_s,1)")
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
printf '| tool | req/s | vs wrk | peak RSS MiB |\n|---|---|---|---|\n'
printf '| wrk -t1 | %s | 1.00 | %s |\n' "$wrk_rps" "$(rss "$work/wrk.err")"
printf '| oha (default threads) | %s | %s | %s |\n' "$oha_rps" "$(ratio "$oha_rps" "$wrk_rps")" "$(rss "$work/oha.err")"
printf '| shakedown --threads 1 | %s | %s | %s |\n' "$sd1" "$(ratio "$sd1" "$wrk_rps")" "$(rss "$work/closed1.err")"
printf '| shakedown (default threads) | %s | %s | %s |\n' "$sd2" "$(ratio "$sd2" "$wrk_rps")" "$(rss "$work/closed2.err")"
best=$(python3 -c "print(max($sd1,$sd2))")

echo
echo "== open model at 50% and 90% of shakedown's closed-loop max ($best req/s), ${DURATION}s"
printf '| intended rate | achieved/intended | send lag p99 ms | latency p99 ms | dropped | peak RSS MiB |\n|---|---|---|---|---|---|\n'
for pct in 50 90; do
  rate=$(python3 -c "print(int($best*$pct/100))")
  run_sd "open$pct" load --target "$URL" --rate "${rate}/s" --duration "${DURATION}s"
  printf '| %s/s (%s%%) | %s | %s | %s | %s | %s |\n' "$rate" "$pct" \
    "$(summary "open$pct" "round(sent/intended,4)")" "$(summary "open$pct" "send_lag_ms['p99']")" \
    "$(summary "open$pct" "latency_ms['p99']")" "$(summary "open$pct" "dropped")" "$(rss "$work/open$pct.err")"
done

echo
echo "== uploads: 50 concurrent 100 MiB bodies (closed loop, 200 requests) into the sink example"
"$TARGET_DIR/release/examples/sink" "127.0.0.1:$SINK_PORT" >/dev/null & echo $! >"$work/sink.pid"
sleep 0.3
cat > "$work/big.toml" <<TOML
name = "big-uploads"
[[stream]]
name = "videos"
kind = "upload"
size = { dist = "fixed", size = "100MiB" }
stages = [ { for = "10s", rate = "5/s" } ]
TOML
run_sd big load "$work/big.toml" --target "http://127.0.0.1:$SINK_PORT" --concurrency 50 --requests 200
printf '| bodies | ok | GiB sent | peak RSS MiB |\n|---|---|---|---|\n'
printf '| 200 x 100 MiB, 50 at once | %s | %s | %s |\n' "$(summary big ok)" "$(summary big "round(bytes_sent/2**30,1)")" "$(rss "$work/big.err")"
