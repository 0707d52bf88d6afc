#!/usr/bin/env bash
# Benchmark: shakedown's peak RSS (getrusage of the child, bench/maxrss.py) at issue 15's
# three memory bounds, in one run:
#   conns:   CONNS (10 000) concurrent keep-alive connections, closed loop for CONN_SECS (10)
#            against one local nginx (1 worker, worker_connections raised)     bound: < 150 MB
#   uploads: UPLOADS (1 000) concurrent 10 MiB uploads, 2 x UPLOADS requests, closed loop,
#            into examples/sink.rs                                             bound: < 300 MB
#   open:    the open model at RATE (2000/s) for DURATION (60s) against the nginx; run it once
#            with DURATION=1m and once with DURATION=1h: the 1-hour peak within 10% of the 1-minute's.
# Usage: bench/memory.sh                    (all three; the open run for DURATION=60s)
#        bench/memory.sh conns uploads      (only those)
#        DURATION=1h OUT=/work/bench-out/open-1h.txt bench/memory.sh open
# Prints one table row per case (and appends it to OUT when set). Needs nginx, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-10000}
CONN_SECS=${CONN_SECS:-10}
UPLOADS=${UPLOADS:-1000}
RATE=${RATE:-2000}
DURATION=${DURATION:-60s}
PORT=${PORT:-18092}
SINK_PORT=${SINK_PORT:-18093}
OUT=${OUT:-}
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(conns uploads open)
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) $(cat "$work/sink.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

for tool in nginx python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (see the header of $0)"; exit 2; }
done
# 10 000 connections need 10 000 descriptors on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((CONNS + 100)) ] || { echo "bench: ulimit -n is $(ulimit -n), below CONNS=$CONNS"; exit 2; }
TARGET_DIR=${CARGO_TARGET_DIR:-target}
# SD=path/to/shakedown uses that binary as built (and its sink example) instead of building.
[ -z "${SD:-}" ] && cargo build --release --quiet --bin shakedown --example sink
SD=${SD:-$TARGET_DIR/release/shakedown}

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 32768; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server { listen 127.0.0.1:$PORT backlog=16384; location / { return 200 "ok\n"; } }
}
NGINX
nginx -c "$work/nginx.conf"
"$(dirname "$SD")/examples/sink" "127.0.0.1:$SINK_PORT" >/dev/null & echo $! >"$work/sink.pid"
sleep 0.5
URL="http://127.0.0.1:$PORT/"

run_sd() { # name, args...
  local name=$1; shift
  python3 bench/maxrss.py "$SD" "$@" --quiet --results "$work/results" --run-id "$name" \
    >"$work/$name.out" 2>"$work/$name.err" || { echo "bench: $name failed:"; cat "$work/$name.err"; exit 1; }
}
summary() { # run name, python expression over the first stream's summary
  python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary'][0]; print(eval(sys.argv[2], {}, s))" \
    "$work/results/$1/run.json" "$2"
}
report() { # run name, what, bound MB, extra
  local mib mb
  mib=$(grep MAXRSS_KB "$work/$1.err" | awk '{printf "%.1f", $2/1024}')
  mb=$(grep MAXRSS_KB "$work/$1.err" | awk '{printf "%.1f", $2*1024/1e6}')
  local row="| $2 | $mb MB ($mib MiB) | $3 | $4 |"
  echo "$row"
  [ -n "$OUT" ] && echo "$(date -u +%FT%TZ) $row" >>"$OUT"
  return 0
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| case | peak RSS | bound | run |\n|---|---|---|---|\n'
for c in "${cases[@]}"; do
  case $c in
    conns)
      run_sd conns load --target "$URL" --concurrency "$CONNS" --duration "${CONN_SECS}s"
      report conns "$CONNS keep-alive connections, closed loop ${CONN_SECS}s" "< 150 MB" \
        "$(summary conns "f'{ok} ok, {sum(errors.values())} errors, {connections[\"opened\"]} connections opened, {sent_per_s:.0f} req/s'")"
      ;;
    uploads)
      cat > "$work/uploads.toml" <<TOML
name = "uploads"
[[stream]]
name = "files"
kind = "upload"
size = { dist = "fixed", size = "10MiB" }
stages = [ { for = "10s", rate = "5/s" } ]
TOML
      run_sd uploads load "$work/uploads.toml" --target "http://127.0.0.1:$SINK_PORT" \
        --concurrency "$UPLOADS" --requests $((2 * UPLOADS))
      report uploads "$UPLOADS concurrent 10 MiB uploads, $((2 * UPLOADS)) requests" "< 300 MB" \
        "$(summary uploads "f'{ok} ok, {sum(errors.values())} errors, {bytes_sent/2**30:.1f} GiB sent'")"
      ;;
    open)
      run_sd open load --target "$URL" --rate "${RATE}/s" --duration "$DURATION"
      report open "open model ${RATE}/s for $DURATION" "1h within 10% of 1m" \
        "$(summary open "f'{sent} sent of {intended}, {dropped} dropped, lag p99 {send_lag_ms[\"p99\"]} ms, {connections[\"opened\"]} connections opened'")"
      ;;
    *) echo "bench: unknown case $c (conns, uploads, open)"; exit 2 ;;
  esac
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
