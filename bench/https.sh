#!/usr/bin/env bash
# Benchmark: shakedown vs wrk vs oha over https, against one local nginx (1 worker) with a
# certificate from a CA made for the run, in one run, same connections, one thread each:
#   keep-alive: max requests/s at CONNS connections;
#   a new connection per request: TLS handshakes/s (wrk: `Connection: close`, oha:
#     --disable-keepalive, shakedown: --no-keep-alive), and how many sessions resumed;
#   HTTP/2: shakedown --http2 and oha --http2 at CONNS streams (wrk has no HTTP/2).
# Needs: nginx and wrk (apt-get install nginx-light wrk), oha (cargo install oha --locked),
# openssl. Usage: bench/https.sh   (CONNS=64 DURATION=10 by default)
# Not part of the test suite: figures go to BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-64}
DURATION=${DURATION:-10}
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
run_sd() { # name, args...
  local name=$1; shift
  python3 bench/maxrss.py "$SD" --threads 1 load --quiet --results "$work/results" --run-id "$name" \
    --target "$URL" --ca-file "$work/ca.pem" --concurrency "$CONNS" --duration "${DURATION}s" "$@" \
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
oha_run() { # name, extra args
  local name=$1; shift
  python3 bench/maxrss.py oha -c "$CONNS" -z "${DURATION}s" --no-tui --output-format json --insecure "$@" "$URL" \
    >"$work/$name.out" 2>"$work/$name.err"
  python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['summary']['requestsPerSec'],1))" "$work/$name.out"
}

echo "== https, keep-alive: $CONNS connections, ${DURATION}s, one thread each, nginx (1 worker)"
wrk_ka=$(wrk_run wrk_ka)
oha_ka=$(oha_run oha_ka -w 1)
run_sd sd_ka
sd_ka=$(summary sd_ka "round(sent_per_s,1)")
printf '| tool | req/s | vs wrk | errors | peak RSS MiB |\n|---|---|---|---|---|\n'
printf '| wrk -t1 | %s | 1.00 | | %s |\n' "$wrk_ka" "$(rss "$work/wrk_ka.err")"
printf '| oha -w 1 | %s | %s | | %s |\n' "$oha_ka" "$(ratio "$oha_ka" "$wrk_ka")" "$(rss "$work/oha_ka.err")"
printf '| shakedown --threads 1 | %s | %s | %s | %s |\n' "$sd_ka" "$(ratio "$sd_ka" "$wrk_ka")" \
  "$(summary sd_ka "sum(errors.values())")" "$(rss "$work/sd_ka.err")"

echo
echo "== https, a new connection (TLS handshake) per request: $CONNS at once, ${DURATION}s"
wrk_nc=$(wrk_run wrk_nc -H "Connection: close")
oha_nc=$(oha_run oha_nc -w 1 --disable-keepalive)
run_sd sd_nc --no-keep-alive
sd_nc=$(summary sd_nc "round(sent_per_s,1)")
printf '| tool | req/s (= handshakes/s) | vs wrk | handshake p50 / p99 ms | resumed |\n|---|---|---|---|---|\n'
printf '| wrk -t1, Connection: close | %s | 1.00 | | |\n' "$wrk_nc"
printf '| oha -w 1 --disable-keepalive | %s | %s | | |\n' "$oha_nc" "$(ratio "$oha_nc" "$wrk_nc")"
printf '| shakedown --threads 1 --no-keep-alive | %s | %s | %s / %s | %s of %s |\n' "$sd_nc" "$(ratio "$sd_nc" "$wrk_nc")" \
  "$(summary sd_nc "connections['tls_handshake_ms']['p50']")" "$(summary sd_nc "connections['tls_handshake_ms']['p99']")" \
  "$(summary sd_nc "connections['tls_resumed']")" "$(summary sd_nc "connections['opened']")"

echo
echo "== HTTP/2 over TLS: $CONNS streams at once, ${DURATION}s (wrk has no HTTP/2)"
oha_h2=$(oha_run oha_h2 -w 1 --http2 -p "$CONNS" -c 1)
run_sd sd_h2 --http2
sd_h2=$(summary sd_h2 "round(sent_per_s,1)")
printf '| tool | req/s | vs oha | connections |\n|---|---|---|---|\n'
printf '| oha -w 1 --http2 (1 connection, %s streams) | %s | 1.00 | 1 |\n' "$CONNS" "$oha_h2"
printf '| shakedown --threads 1 --http2 | %s | %s | %s |\n' "$sd_h2" "$(ratio "$sd_h2" "$oha_h2")" \
  "$(summary sd_h2 "connections['opened']")"
