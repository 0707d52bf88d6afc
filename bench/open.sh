#!/usr/bin/env bash
# Benchmark: the open model's punctuality, from 100/s to 90% of shakedown's own closed-loop
# maximum, against one local nginx (1 worker, `return 200`), in one run.
#   1. closed loop (CONNS connections, DURATION s): shakedown's maximum req/s;
#   2. open model at 100/s, 1 000/s, 10 000/s, then 25/50/75/90% of that maximum (DURATION s each).
# Per rate, from the run's own results (run.json): achieved/intended (sent over the schedule's
# arrivals, and sent over rate x duration), dropped, send lag (actual start of the send minus
# its intended time) p50/p99/p99.9/max, latency p99 (from the intended time), peak RSS.
# Issue 15's bound: achieved within 0.5%, no drops, lag p99 < 1 ms and p99.9 < 5 ms at every rate.
# Needs: nginx (apt-get install nginx-light), python3.
# Usage: bench/open.sh            (CONNS=64 DURATION=10 THREADS= (default) by default;
#                                  RATES="100 1000 ..." to give the open-model rates by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-64}
DURATION=${DURATION:-10}
PORT=${PORT:-18091}
THREADS=${THREADS:-}
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

for tool in nginx python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (see the header of $0)"; exit 2; }
done
# SD=path/to/shakedown uses that binary as built instead of building.
[ -z "${SD:-}" ] && cargo build --release --quiet --bin shakedown
SD=${SD:-${CARGO_TARGET_DIR:-target}/release/shakedown}
threads=()
[ -n "$THREADS" ] && threads=(--threads "$THREADS")

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$PORT backlog=4096; location / { return 200 "ok\n"; } }
}
NGINX
nginx -c "$work/nginx.conf"
sleep 0.5
URL="http://127.0.0.1:$PORT/"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

run_sd() { # name, args...
  local name=$1; shift
  python3 bench/maxrss.py "$SD" "${threads[@]}" "$@" --quiet --results "$work/results" --run-id "$name" \
    >"$work/$name.out" 2>"$work/$name.err" || { echo "bench: $name failed:"; cat "$work/$name.err"; exit 1; }
}

echo "== closed loop: $CONNS connections, ${DURATION}s, nginx (1 worker)"
run_sd closed load --target "$URL" --concurrency "$CONNS" --duration "${DURATION}s"
max=$(python3 -c "import json; print(round(json.load(open('$work/results/closed/run.json'))['summary'][0]['sent_per_s']))")
echo "shakedown closed-loop max: $max req/s"

if [ -z "${RATES:-}" ]; then
  RATES=$(python3 -c "
m=$max
fixed=[r for r in (100, 1000, 10000) if r < 0.25*m]
print(' '.join(str(r) for r in fixed + [int(m*p/100) for p in (25, 50, 75, 90)]))")
fi

echo
echo "== open model, ${DURATION}s per rate (uniform arrivals)"
printf '| intended rate | of max | sent/intended | sent/(rate x time) | dropped | late | lag p50 ms | lag p99 ms | lag p99.9 ms | lag max ms | latency p99 ms | peak RSS MiB |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
for rate in $RATES; do
  run_sd "open$rate" load --target "$URL" --rate "${rate}/s" --duration "${DURATION}s"
  python3 - "$work/results/open$rate/run.json" "$rate" "$DURATION" "$max" "$work/open$rate.err" <<'PY'
import json, sys
path, rate, duration, mx, err = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
s = json.load(open(path))["summary"][0]
lag, lat = s["send_lag_ms"], s["latency_ms"]
rss = next(float(l.split()[1]) / 1024 for l in open(err) if l.startswith("MAXRSS_KB"))
print(f"| {rate:,.0f}/s | {rate / mx:.0%} | {s['sent'] / max(s['intended'], 1):.4f} | "
      f"{s['sent'] / (rate * duration):.4f} | {s['dropped']} | {s['late']} | {lag['p50']:.3f} | "
      f"{lag['p99']:.3f} | {lag['p999']:.3f} | {lag['max']:.1f} | {lat['p99']:.3f} | {rss:.1f} |")
PY
done
echo
echo "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
