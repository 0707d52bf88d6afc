#!/usr/bin/env bash
# Time and peak memory of `shakedown analyze` (verdicts, report.html, junit.xml, summary.md)
# on a synthetic 1-hour run: 1 Hz timeline, latency log, harness and probe samples (10
# probes), and a ledger of MESSAGES messages (default 10,000,000) in accepted.jsonl +
# completions.jsonl, a few lost (1 in 1,000,000) and completed twice (1 in 100,000).
# The run is built from the committed example run (results/examples/demo-quick): its journal,
# activities and census, its per-second rows repeated over the hour, with an experiment of
# 10 probes and 8 promises (failover, buffering, no-loss, scale-out, scale-in and three
# thresholds, one on e2e_p99).
#
# Usage: bench/analyze.sh [messages] [reps]      (defaults 10000000 3)
# KEEP=DIR keeps (and on later calls reuses) the synthetic run in DIR: it is ~1.6 GB and
# takes about a minute to write.
# Prints one RESULT line per repetition and a final table with the medians.
set -euo pipefail

MESSAGES="${1:-10000000}"
REPS="${2:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export AWS_EC2_METADATA_DISABLED=true
BIN="$CARGO_TARGET_DIR/release/shakedown"

cd "$ROOT"
cargo build --release --quiet --bin shakedown

if [ -n "${KEEP:-}" ]; then
    RUN="$KEEP"
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
else
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    RUN="$WORK/run"
fi

if [ -f "$RUN/.synthetic-$MESSAGES" ]; then
    echo "== reusing the synthetic run in $RUN =="
else
    echo "== writing a synthetic 1-hour run with $MESSAGES messages to $RUN =="
    rm -rf "$RUN"
    cp -r "$ROOT/results/examples/demo-quick" "$RUN"
    rm -f "$RUN/verdict.json" "$RUN/report.html" "$RUN/junit.xml" "$RUN/summary.md"
    # The experiment names its profile relative to the repository's chaos/ directory.
    sed -i "s|^profile = \"\.\./profiles/|profile = \"$ROOT/profiles/|" "$RUN/experiment.toml"
    python3 - "$RUN" "$MESSAGES" <<'PY'
import csv, datetime, io, json, sys
run, n = sys.argv[1], int(sys.argv[2])
HOUR = 3600
meta = json.load(open(f"{run}/run.json"))
start = datetime.datetime.fromisoformat(meta["started_at"].replace("Z", "+00:00")[:26] + "+00:00")
base_ms = int(start.timestamp() * 1000)
end = start + datetime.timedelta(seconds=HOUR + 5)
meta["ended_at"] = end.isoformat().replace("+00:00", "Z")
meta["mode"]["duration_s"] = float(HOUR)
for stream in meta["profile"]["streams"]:
    used = sum(stage[0] for stage in stream["stages"][:-1])
    stream["stages"][-1] = [float(HOUR - used), 1400.0, 1400.0]
json.dump(meta, open(f"{run}/run.json", "w"), indent=2)

def cycle_rows(path, key):
    """The file's rows repeated over the hour, `key` (the second column) rewritten."""
    rows = list(csv.reader(open(path)))
    header, body = rows[0], rows[1:]
    col = header.index(key)
    seconds = sorted({int(r[col]) for r in body})
    by_second = {}
    for r in body:
        by_second.setdefault(int(r[col]), []).append(r)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for s in range(HOUR):
        for r in by_second[seconds[s % len(seconds)]]:
            r = list(r)
            r[col] = str(s)
            w.writerow(r)
    return header, out.getvalue()

for name in ("timeline.csv", "harness.csv"):
    _, text = cycle_rows(f"{run}/{name}", "second")
    open(f"{run}/{name}", "w").write(text)

# 10 probes: the 4 of the demo plus 6 more of the same kinds.
header, text = cycle_rows(f"{run}/probes.csv", "second")
extra = ["delayed", "dlq_visible", "oldest_age", "web_pending", "workers_desired", "workers_max"]
lines = text.splitlines()
out = [",".join([lines[0]] + extra)]
for i, line in enumerate(lines[1:]):
    out.append(line + f",0,0,{i % 7},0,{1 + i % 5},8")
open(f"{run}/probes.csv", "w").write("\n".join(out) + "\n")

# The latency log: each tag's intervals repeated over the hour.
hlog = open(f"{run}/latency.hlog").read().splitlines()
head = [l for l in hlog if not l.startswith("Tag=")]
tags = {}
for l in hlog:
    if l.startswith("Tag="):
        tag, rest = l.split(",", 1)
        tags.setdefault(tag, []).append(rest.split(",", 1)[1])
with open(f"{run}/latency.hlog", "w") as f:
    f.write("\n".join(head) + "\n")
    for s in range(HOUR):
        for tag, intervals in tags.items():
            f.write(f"{tag},{s:.3f},{intervals[s % len(intervals)]}\n")

# The ledger: two streams, evenly over the hour.
tag = meta["run_tag"]
streams = ["uploads", "events"]
per = n // len(streams)
with open(f"{run}/accepted.jsonl", "w") as a, open(f"{run}/completions.jsonl", "w") as c:
    for s, name in enumerate(streams):
        for q in range(per):
            t = base_ms + q * HOUR * 1000 // per
            a.write(f'{{"id":"{tag}-{s}-{q}","stream":"{name}","t_ms":{t},"status":202}}\n')
            if q % 1_000_000 == 12_345:
                continue  # lost
            line = f'{{"id":"{tag}-{s}-{q}","done_ms":{t + 200 + q % 5000},"outcome":"completed","receive_count":1,"worker":"i-0{q % 8}"}}\n'
            c.write(line)
            if q % 100_000 == 7:
                c.write(line)  # done twice
PY
    cat >>"$RUN/experiment.toml" <<'TOML'

[[probe]]
name = "delayed"
kind = "sqs"
queue = "jobs"
metric = "delayed"

[[probe]]
name = "dlq_visible"
kind = "sqs"
queue = "jobs"
dlq = "jobs-dlq"
metric = "dlq_visible"

[[probe]]
name = "oldest_age"
kind = "sqs"
queue = "jobs"
metric = "oldest_age"

[[probe]]
name = "web_pending"
kind = "ec2"
instances = { tags = { tier = "web" } }
state = "pending"

[[probe]]
name = "workers_desired"
kind = "asg"
group = "workers"
metric = "desired"

[[probe]]
name = "workers_max"
kind = "asg"
group = "workers"
metric = "max"

[[promise]]
name = "steady-state"
type = "threshold"
checks = ["p99 < 2s", "error_rate < 1%"]
over = "before"

[[promise]]
name = "after-the-faults"
type = "threshold"
checks = ["p99 < 2s", "error_rate < 1%", "rate >= 1/s"]
over = "after"

[[promise]]
name = "jobs-end-to-end"
type = "threshold"
checks = ["e2e_p99 < 30s", "e2e_p50 < 10s"]
TOML
    touch "$RUN/.synthetic-$MESSAGES"
fi
du -sh "$RUN/accepted.jsonl" "$RUN/completions.jsonl"
"$BIN" validate "$RUN/experiment.toml" >/dev/null

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== shakedown analyze, $REPS repetitions (load average before: $LOAD_BEFORE) =="
for rep in $(seq 1 "$REPS"); do
    START=$(date +%s.%N)
    python3 "$ROOT/bench/maxrss.py" "$BIN" analyze "$RUN" --allow-not-evaluable >"$WORK/out" 2>"$WORK/rss" || true
    END=$(date +%s.%N)
    if [ "$rep" = 1 ]; then grep -E "^(no-loss|jobs-end-to-end|steady-state|failover|overall)" "$WORK/out" || cat "$WORK/out"; fi
    KB=$(grep MAXRSS_KB "$WORK/rss" | awk '{print $2}')
    awk -v kb="$KB" -v n="$MESSAGES" -v s="$START" -v e="$END" 'BEGIN {
        printf "RESULT messages=%d seconds=%.2f peak_rss_mib=%.1f\n", n, e - s, kb / 1024 }' | tee -a "$WORK/results"
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/results" "$LOAD_BEFORE" "$LOAD_AFTER" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=([0-9.]+)", l)) for l in open(sys.argv[1])]
secs = statistics.median(float(r["seconds"]) for r in rows)
rss = statistics.median(float(r["peak_rss_mib"]) for r in rows)
n = int(rows[0]["messages"])
print()
print("| messages | reps | analyze wall (median) | peak RSS (median) | goal | load avg before / after |")
print("|---:|---:|---:|---:|---|---|")
ok = "met" if secs < 2 and rss * 1.048576 < 500 else "NOT met"  # 500 MB = 476.8 MiB
print(f"| {n:,} | {len(rows)} | {secs:.2f} s | {rss:.0f} MiB | < 2 s and < 500 MB: {ok} | {sys.argv[2]} / {sys.argv[3]} |")
PY
