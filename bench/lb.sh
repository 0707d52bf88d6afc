#!/usr/bin/env bash
# Benchmark: the sandbox balancer's added latency, next to a reference proxy.
# Starts `shakedown sandbox --arch tiered`, picks one healthy web instance, and puts a local
# nginx (1 worker, keep-alive upstream) in front of that same instance. Then sends the same
# open-model load (RATE for DURATION, `GET /health`, answered 200 by the instance) three ways:
# straight to the instance, through the sandbox's balancer, through nginx; REPS alternating
# repetitions after a 2 s warm-up of each path. Prints, per path, the median p50/p99 of the
# latency (from the intended time: includes the load generator's own send lag) and of the
# service time (from the actual send: what the path takes), and the median of the
# per-repetition differences from the direct path. Issue 15's goal for the balancer: under
# 0.200 ms added at p99 at 5,000/s, judged on the service time (the send lag is the load
# generator's, the same on every path, and measured on its own). nginx's row says what one
# proxy hop costs on this machine, whatever the proxy.
# Needs: nginx (apt-get install nginx-light), curl, python3.
# Usage: bench/lb.sh            (RATE=5000/s DURATION=10s REPS=5 by default)
#        SD=path/to/shakedown bench/lb.sh      (that binary, no build)
# Not part of the test suite: figures go to BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-5000/s}
REPS=${REPS:-5}
DURATION=${DURATION:-10s}
PORT=${PORT:-18110}
NGINX_PORT=${NGINX_PORT:-18111}
for tool in nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (see the header of $0)"; exit 2; }
done
[ -z "${SD:-}" ] && cargo build --release --quiet --bin shakedown
SD=${SD:-${CARGO_TARGET_DIR:-target}/release/shakedown}
work=$(mktemp -d)
"$SD" sandbox --arch tiered --port "$PORT" --print-endpoints json >"$work/endpoints.json" 2>"$work/sandbox.log" &
sandbox=$!
trap 'kill $sandbox 2>/dev/null; kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -s "$work/endpoints.json" ] && break; sleep 0.1; done
control=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['control_url'])" "$work/endpoints.json")
direct=
for _ in $(seq 1 100); do
  direct=$(curl -s "$control/targets" | python3 -c "import json,sys; t=[x for x in json.load(sys.stdin)['targets'] if x['state']=='healthy']; print(t[0]['addr'] if t else '')")
  [ -n "$direct" ] && break; sleep 0.1
done
[ -n "$direct" ] || { echo "bench: no healthy web instance"; cat "$work/sandbox.log"; exit 1; }

cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  upstream web { server $direct; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
nginx -c "$work/nginx.conf"
sleep 0.3

cat >"$work/health.toml" <<'TOML'
name = "lb-bench"
[[stream]]
name = "health"
kind = "event"
request = { method = "GET", path = "/health" }
arrival = "uniform"
stages = [{ for = "DURATION", rate = "RATE" }]
TOML
sed -i -e "s|DURATION|$DURATION|" -e "s|RATE|$RATE|" "$work/health.toml"
sed -e 's|for = "[^"]*"|for = "2s"|' "$work/health.toml" >"$work/warm.toml"

paths=("direct http://$direct" "balancer http://127.0.0.1:$PORT" "nginx http://127.0.0.1:$NGINX_PORT")
run() { # run id, target, profile
  "$SD" load --quiet --results "$work/results" --run-id "$1" --target "$2" "$3" >/dev/null 2>&1 \
    || { echo "bench: run $1 failed"; exit 1; }
}
row() { # run id -> "latency-p50 latency-p99 service-p50 service-p99 ok errors"
  python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))['summary'][0]
l, t = s['latency_ms'], s['service_time_ms']
print(l['p50'], l['p99'], t['p50'], t['p99'], s['ok'], sum(s['errors'].values()))" \
    "$work/results/$1/run.json"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for p in "${paths[@]}"; do set -- $p; run "warm-$1" "$2" "$work/warm.toml"; done
: >"$work/rows"
for rep in $(seq 1 "$REPS"); do
  line="rep=$rep"
  for p in "${paths[@]}"; do
    set -- $p
    run "$1-$rep" "$2" "$work/health.toml"
    read -r p50 p99 s50 s99 ok errors < <(row "$1-$rep")
    [ "$errors" = 0 ] || { echo "bench: $1-$rep had $errors errors (ok $ok)"; exit 1; }
    line="$line ${1}_p50=$p50 ${1}_p99=$p99 ${1}_s50=$s50 ${1}_s99=$s99"
  done
  echo "RESULT $line" | tee -a "$work/rows"
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/rows" "$RATE" "$DURATION" "$direct" "$LOAD_BEFORE" "$LOAD_AFTER" <<'PY'
import re, statistics, sys
rows = [{k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", l)} for l in open(sys.argv[1])]
med = lambda k: statistics.median(r[k] for r in rows)
over = lambda path, q: statistics.median(r[f"{path}_{q}"] - r[f"direct_{q}"] for r in rows)
print()
print(f"{sys.argv[2]} for {sys.argv[3]}, GET /health, medians of {len(rows)} alternating repetitions; "
      f"load average before / after: {sys.argv[5]} / {sys.argv[6]}")
print()
print("| path | latency p50 ms | latency p99 ms | added p50 | added p99 | service p50 ms | service p99 ms | added p50 | added p99 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| direct to one web instance ({sys.argv[4]}) | {med('direct_p50'):.3f} | {med('direct_p99'):.3f} | | "
      f"| {med('direct_s50'):.3f} | {med('direct_s99'):.3f} | | |")
for path, name in (("balancer", "through the sandbox balancer"), ("nginx", "through nginx (reference proxy)")):
    print(f"| {name} | {med(path + '_p50'):.3f} | {med(path + '_p99'):.3f} | {over(path, 'p50'):.3f} | "
          f"{over(path, 'p99'):.3f} | {med(path + '_s50'):.3f} | {med(path + '_s99'):.3f} | "
          f"{over(path, 's50'):.3f} | {over(path, 's99'):.3f} |")
print()
print("latency: from each request's intended time (includes the load generator's own send lag);")
print("service: from the actual send, what the path itself takes; added: median of the per-repetition")
print("differences from the direct path.")
ok = "met" if over("balancer", "s99") < 0.2 else "NOT met"
print()
print(f"balancer: added service p99 {over('balancer', 's99'):.3f} ms (goal < 0.200: {ok}); "
      f"nginx adds {over('nginx', 's99'):.3f} ms on the same machine")
PY
