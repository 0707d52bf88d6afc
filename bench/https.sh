#!/usr/bin/env bash
# Benchmark: shakedown vs wrk vs oha over https, against one local nginx (1 worker) with a
# certificate from a CA made for the run, in one run, same connections, one thread each:
#   keep-alive: max requests/s at CONNS connections;
#   a new connection per request: TLS handshakes/s (wrk: `Connection: close`, oha:
#     --disable-keepalive, shakedown: --no-keep-alive), and how many sessions resumed;
#   HTTP/2: shakedown --http2 and oha --http2 at CONNS streams (wrk has no HTTP/2).
# Each measurement is taken ROUNDS times, the tools interleaved (this machine is noisy: one
# 10 s run can be 30% off the next); the tables give the median of each.
# Needs: nginx and wrk (apt-get install nginx-light wrk), oha (cargo install oha --locked),
# openssl. Usage: bench/https.sh   (CONNS=64 DURATION=10 ROUNDS=3 by default)
# Not part of the test suite: figures go to BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-64}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18443}
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

for tool in nginx wrk oha openssl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (see the header of $0)"; exit 2; }
done
cargo build --release --quiet --bin shakedown
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SD=$TARGET_DIR/release/shakedown

# A CA and a server certificate for 127.0.0.1 (ECDSA P-256, as a load balancer would have).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/ext.cnf" -out "$work/server.pem" 2>/dev/null

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  ssl_session_cache shared:bench:10m;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:$PORT ssl http2;
    ssl_certificate $work/server.pem;
    ssl_certificate_key $work/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 128;
    location / { return 200 "ok\n"; }
  }
}
NGINX
nginx -c "$work/nginx.conf"
sleep 0.5
URL="https://127.0.0.1:$PORT/"
curl -sf --cacert "$work/ca.pem" "$URL" >/dev/null || { echo "bench: nginx over TLS does not answer"; exit 2; }

rss() { grep MAXRSS_KB "$1" | awk '{printf "%.1f", $2/1024}'; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
median() { python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])),1))" "$@"; }
run_sd() { # name, args...
  local name=$1; shift
  python3 bench/maxrss.py "$SD" --threads 1 load --quiet --results "$work/results" --run-id "$name" \
    --target "$URL" --ca-file "$work/ca.pem" --duration "${DURATION}s" "$@" \
    >"$work/$name.out" 2>"$work/$name.err"
}
summary() { # run name, python expression over the stream summary
  python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary'][0]; print(eval(sys.argv[2], {}, s))" "$work/results/$1/run.json" "$2"
}
wrk_run() { # name, extra args
  local name=$1; shift
  python3 bench/maxrss.py wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "$URL" >"$work/$name.out" 2>"$work/$name.err"
  awk '/Requests\/sec/ {print $2}' "$work/$name.out"
}
oha_run() { # name, extra args (connections included)
  local name=$1; shift
  python3 bench/maxrss.py oha -z "${DURATION}s" --no-tui --output-format json --insecure --worker-threads 1 "$@" "$URL" \
    >"$work/$name.out" 2>"$work/$name.err"
  python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['summary']['requestsPerSec'],1))" "$work/$name.out" \
    || { echo "bench: oha failed: $(head -c 400 "$work/$name.err")" >&2; exit 1; }
}

declare -a wrk_ka oha_ka sd_ka wrk_nc oha_nc sd_nc oha_h2 sd_h2
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  wrk_ka+=("$(wrk_run "wrk_ka$round")")
  oha_ka+=("$(oha_run "oha_ka$round" -c "$CONNS")")
  run_sd "sd_ka$round" --concurrency "$CONNS"
  sd_ka+=("$(summary "sd_ka$round" "round(sent_per_s, 1)")")
  wrk_nc+=("$(wrk_run "wrk_nc$round" -H "Connection: close")")
  oha_nc+=("$(oha_run "oha_nc$round" -c "$CONNS" --disable-keepalive)")
  run_sd "sd_nc$round" --concurrency "$CONNS" --no-keep-alive
  sd_nc+=("$(summary "sd_nc$round" "round(sent_per_s, 1)")")
  oha_h2+=("$(oha_run "oha_h2$round" -c 1 -p "$CONNS" --http2)")
  run_sd "sd_h2$round" --concurrency "$CONNS" --http2
  sd_h2+=("$(summary "sd_h2$round" "round(sent_per_s, 1)")")
done
last=$ROUNDS

echo "== https, keep-alive: $CONNS connections, ${DURATION}s, one thread each, nginx (1 worker); median of $ROUNDS"
w=$(median "${wrk_ka[@]}"); o=$(median "${oha_ka[@]}"); s=$(median "${sd_ka[@]}")
printf '| tool | req/s (median) | runs | vs wrk | peak RSS MiB |\n|---|---|---|---|---|\n'
printf '| wrk -t1 | %s | %s | 1.00 | %s |\n' "$w" "${wrk_ka[*]}" "$(rss "$work/wrk_ka$last.err")"
printf '| oha --worker-threads 1 | %s | %s | %s | %s |\n' "$o" "${oha_ka[*]}" "$(ratio "$o" "$w")" "$(rss "$work/oha_ka$last.err")"
printf '| shakedown --threads 1 | %s | %s | %s | %s |\n' "$s" "${sd_ka[*]}" "$(ratio "$s" "$w")" "$(rss "$work/sd_ka$last.err")"

echo
echo "== https, a new connection (TLS handshake) per request: $CONNS at once, ${DURATION}s; median of $ROUNDS"
w=$(median "${wrk_nc[@]}"); o=$(median "${oha_nc[@]}"); s=$(median "${sd_nc[@]}")
printf '| tool | req/s = handshakes/s (median) | runs | vs wrk |\n|---|---|---|---|\n'
printf '| wrk -t1, Connection: close | %s | %s | 1.00 |\n' "$w" "${wrk_nc[*]}"
printf '| oha --disable-keepalive | %s | %s | %s |\n' "$o" "${oha_nc[*]}" "$(ratio "$o" "$w")"
printf '| shakedown --no-keep-alive | %s | %s | %s |\n' "$s" "${sd_nc[*]}" "$(ratio "$s" "$w")"
printf 'shakedown, last round: handshake p50 %s ms, p99 %s ms; %s of %s sessions resumed\n' \
  "$(summary "sd_nc$last" "connections['tls_handshake_ms']['p50']")" "$(summary "sd_nc$last" "connections['tls_handshake_ms']['p99']")" \
  "$(summary "sd_nc$last" "connections['tls_resumed']")" "$(summary "sd_nc$last" "connections['opened']")"

echo
echo "== HTTP/2 over TLS: $CONNS requests at once, ${DURATION}s (wrk has no HTTP/2); median of $ROUNDS"
o=$(median "${oha_h2[@]}"); s=$(median "${sd_h2[@]}")
printf '| tool | req/s (median) | runs | vs oha | connections |\n|---|---|---|---|---|\n'
printf '| oha --http2 -c 1 -p %s | %s | %s | 1.00 | 1 |\n' "$CONNS" "$o" "${oha_h2[*]}"
printf '| shakedown --http2 --concurrency %s | %s | %s | %s | %s |\n' "$CONNS" "$s" "${sd_h2[*]}" "$(ratio "$s" "$o")" \
  "$(summary "sd_h2$last" "connections['opened']")"
