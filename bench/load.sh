#!/usr/bin/env bash
# Benchmark: shakedown vs wrk vs oha against one local nginx (1 worker), in one run.
#   closed loop: max requests/s at the same connection count, CPU per request of the client
#                and of the target (and how busy the target was), and peak RSS;
#   open model: accuracy at 50% and 90% of shakedown's closed-loop max
#               (achieved/intended rate, send lag p99);
#   uploads: peak RSS for 50 concurrent 100 MiB uploads (shared-buffer bodies).
# Needs: nginx and wrk (apt-get install nginx-light wrk), oha (cargo install oha --locked).
# Usage: bench/load.sh            (CONNS=64 DURATION=10 ROUNDS=4 by default; the closed-loop
#                                  tools run in ROUNDS alternating rounds, medians reported)
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
ROUNDS=${ROUNDS:-4}

run_sd() { # name, args...
  local name=$1; shift
  python3 bench/maxrss.py "$SD" "$@" --quiet --results "$work/results" --run-id "$name" >"$work/$name.out" 2>"$work/$name.err"
}
summary() { # run name, json key
  python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary'][0]; print(eval(sys.argv[2], {}, s))" "$work/results/$1/run.json" "$2"
}
# The target's CPU time so far (clock ticks of its one worker process), to say whether the
# target or the client set the closed-loop rate.
nginx_worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)
ticks() { awk '{print $14 + $15}' "/proc/$nginx_worker/stat"; }
closed_run() { # tool, round: one closed-loop run; appends "tool req/s client-CPU-s target-ticks peak-RSS-MiB"
  local tool=$1 name="$1-$2" t0 rps
  t0=$(ticks)
  case $tool in
    wrk)
      python3 bench/maxrss.py wrk -t1 -c"$CONNS" -d"${DURATION}s" "$URL" >"$work/$name.out" 2>"$work/$name.err"
      rps=$(awk '/Requests\/sec/ {print $2}' "$work/$name.out") ;;
    oha)
      python3 bench/maxrss.py oha -c "$CONNS" -z "${DURATION}s" --no-tui --output-format json "$URL" >"$work/$name.out" 2>"$work/$name.err"
      rps=$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['summary']['requestsPerSec'],1))" "$work/$name.out") ;;
    sd1)
      run_sd "$name" --threads 1 load --target "$URL" --concurrency "$CONNS" --duration "${DURATION}s"
      rps=$(summary "$name" "round(sent_per_s,1)") ;;
    sd)
      run_sd "$name" load --target "$URL" --concurrency "$CONNS" --duration "${DURATION}s"
      rps=$(summary "$name" "round(sent_per_s,1)") ;;
  esac
  echo "$tool $rps $(awk '/^CPU_S/ {print $2}' "$work/$name.err") $(( $(ticks) - t0 )) $(rss "$work/$name.err")" >>"$work/closed.rows"
}

echo "== closed loop: $CONNS connections, ${DURATION}s per run, $ROUNDS alternating rounds, target nginx (1 worker)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$work/closed.rows"
for round in $(seq 1 "$ROUNDS"); do
  for tool in wrk oha sd1 sd; do closed_run "$tool" "$round"; done
done
echo "load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/closed.rows" "$DURATION" "$(getconf CLK_TCK)" <<'TABLE'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
duration, hz = float(sys.argv[2]), float(sys.argv[3])
names = {"wrk": "wrk -t1", "oha": "oha (default threads)", "sd1": "shakedown --threads 1",
         "sd": "shakedown (default threads)"}
by = {t: [r for r in rows if r[0] == t] for t in names}
med = lambda t, i: statistics.median(float(r[i]) for r in by[t])
wrk, oha = med("wrk", 1), med("oha", 1)
print("| tool | req/s (median) | vs wrk | vs oha | client CPU us/req | target CPU us/req | target busy | peak RSS MiB | rounds (req/s) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for t, name in names.items():
    rps = med(t, 1)
    client = statistics.median(float(r[2]) * 1e6 / (float(r[1]) * duration) for r in by[t])
    target = statistics.median(float(r[3]) / hz * 1e6 / (float(r[1]) * duration) for r in by[t])
    busy = statistics.median(float(r[3]) / hz / duration for r in by[t])
    each = " / ".join(f"{float(r[1]):,.0f}" for r in by[t])
    print(f"| {name} | {rps:,.0f} | {rps / wrk:.2f} | {rps / oha:.2f} | {client:.1f} | {target:.1f} | "
          f"{busy:.0%} | {med(t, 4):.1f} | {each} |")
print()
print("client CPU: user + system time of the tool per request; target CPU: nginx's worker per request;")
print("target busy: the worker's share of one core during the run (near 100%: the target set the rate).")
TABLE
median_of() { python3 -c "import statistics,sys; print(statistics.median(float(l.split()[1]) for l in open(sys.argv[1]) if l.split()[0] == sys.argv[2]))" "$work/closed.rows" "$1"; }
sd1=$(median_of sd1)
sd2=$(median_of sd)
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
