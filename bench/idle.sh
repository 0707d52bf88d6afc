#!/usr/bin/env bash
# CPU use of an idle sandbox: `shakedown sandbox` (queued) with 8 workers and 2 web
# instances, no traffic. Waits until all 10 instance processes run and SETTLE seconds more,
# then reads utime+stime (/proc/<pid>/stat) of the supervisor and every descendant at the
# start and end of WINDOW seconds, and reports the CPU used as % of one core.
# Usage: bench/idle.sh            (SETTLE=10 WINDOW=30 REPS=3 by default)
# Goal (issue 15): under 2% of one core.
set -euo pipefail
cd "$(dirname "$0")/.."
SETTLE=${SETTLE:-10}
WINDOW=${WINDOW:-30}
REPS=${REPS:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
export AWS_EC2_METADATA_DISABLED=true
SD=$CARGO_TARGET_DIR/release/shakedown
work=$(mktemp -d)
cargo build --release --quiet --bin shakedown
cat >"$work/sandbox.toml" <<'TOML'
arch = "queued"

[web]
instances = 2

[workers]
min = 8
max = 8
desired = 8
TOML
"$SD" sandbox --config "$work/sandbox.toml" --dir "$work/sandbox" --print-endpoints json \
    >"$work/endpoints.json" 2>"$work/sandbox.log" &
sandbox=$!
trap 'kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$work"' EXIT

# The supervisor's process tree, one pid a line (children first found through /proc).
tree() {
    python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1])
parent = {}
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        parent[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
out, todo = [], [root]
while todo:
    p = todo.pop()
    out.append(p)
    todo.extend(c for c, pp in parent.items() if pp == p)
print("\n".join(map(str, out)))
PY
}

# Sum of utime+stime (clock ticks) over the given pids (and their reaped children).
ticks() {
    local total=0 pid fields
    for pid in "$@"; do
        fields=$(cut -d')' -f2- "/proc/$pid/stat" 2>/dev/null) || continue
        # After the ")": state ppid ... utime is field 12, stime 13 (14/15 of the full line).
        total=$((total + $(awk '{print $12 + $13}' <<<"$fields")))
    done
    echo "$total"
}

for _ in $(seq 1 300); do
    count=$(($(tree "$sandbox" | wc -l) - 1))
    [ "$count" -ge 10 ] && break
    sleep 0.2
done
echo "sandbox pid $sandbox: $count child processes; settling ${SETTLE}s"
sleep "$SETTLE"
HZ=$(getconf CLK_TCK)
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
: >"$work/results"
for rep in $(seq 1 "$REPS"); do
    mapfile -t pids < <(tree "$sandbox")
    before=$(ticks "${pids[@]}")
    start=$(date +%s.%N)
    sleep "$WINDOW"
    after=$(ticks "${pids[@]}")
    end=$(date +%s.%N)
    awk -v b="$before" -v a="$after" -v hz="$HZ" -v s="$start" -v e="$end" -v n="${#pids[@]}" 'BEGIN {
        printf "RESULT processes=%d cpu_s=%.2f wall_s=%.1f percent_of_core=%.2f\n", n, (a - b) / hz, e - s, 100 * (a - b) / hz / (e - s) }' |
        tee -a "$work/results"
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/results" "$LOAD_BEFORE" "$LOAD_AFTER" "$WINDOW" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=([0-9.]+)", l)) for l in open(sys.argv[1])]
pct = statistics.median(float(r["percent_of_core"]) for r in rows)
print()
print("| sandbox | processes | window | CPU, % of one core (median) | goal | load avg before / after |")
print("|---|---:|---:|---:|---|---|")
ok = "met" if pct < 2 else "NOT met"
print(f"| queued, 8 workers + 2 web, idle | {rows[0]['processes']} | {len(rows)} x {sys.argv[4]} s | {pct:.2f}% | < 2%: {ok} | {sys.argv[2]} / {sys.argv[3]} |")
PY
