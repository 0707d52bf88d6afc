#!/usr/bin/env bash
# The HTML report of a 1-hour run: file size, render time, and how long headless Chromium
# takes to open it. Not a test: figures for BENCHMARKS.md.
#
#   bench/report.sh [SHAKEDOWN_BINARY]     (default: $CARGO_TARGET_DIR/debug/shakedown)
#
# Synthesises a 1-hour run directory (3 streams, 4 probes, 3 faults, scaling activities,
# 180k ledger messages, a priced cost promise) from the committed demo run: its
# latency.hlog seconds and journal entries are tiled and re-timed, the rest generated with
# a fixed seed. Then renders it with `shakedown report` and loads it 3 times in Chromium:
# `data-ready-ms` is the page's own performance.now() once its script has laid out and
# checked every chart (navigation start -> charts checked), the wall time includes
# Chromium's start.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-${CARGO_TARGET_DIR:-target}/debug/shakedown}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
RUN="$WORK/bench-hour"
mkdir -p "$RUN"

python3 - "$RUN" <<'EOF'
import json, math, random, sys, os
run = sys.argv[1]
demo = "results/examples/demo-quick"
random.seed(14)
N = 3600
T0_MS = 1796227220327  # the demo's start: its hlog and journal are re-timed against it
meta = json.load(open(f"{demo}/run.json"))
meta["run_id"] = "bench-hour"
meta["mode"]["duration_s"] = 3540.0
for s in meta["profile"]["streams"]:
    s["stages"] = [[600.0, 20.0, 20.0], [1800.0, 20.0, 80.0], [1140.0, 50.0, 50.0], [60.0, 0.0, 0.0]]
meta["profile"]["streams"].append(dict(meta["profile"]["streams"][1], name="clicks"))
start = "2026-12-02T16:00:20.327Z"
meta["started_at"] = start
meta["ended_at"] = "2026-12-02T17:00:20.327Z"
json.dump(meta, open(f"{run}/run.json", "w"), indent=1)

faults = [("kill-web", 900, None), ("stall-workers", 1800, 2100), ("kill-web", 2700, None)]
def rate(t):
    return 20 if t < 600 else 20 + 60 * (t - 600) / 1800 if t < 2400 else 50 if t < 3540 else 0
def in_fault(t):
    return any(a <= t < (b if b else a + 5) for _, a, b in faults)

header = open(f"{demo}/timeline.csv").readline().strip()
cols = header.split(",")
with open(f"{run}/timeline.csv", "w") as f:
    f.write(header + "\n")
    for t in range(N):
        for stream, share in (("uploads", 1.0), ("events", 0.5), ("clicks", 0.3)):
            r = dict.fromkeys(cols, "0")
            intended = int(rate(t) * share + random.random())
            err = min(intended, int(intended * 0.3) if in_fault(t) else (1 if random.random() < 0.01 else 0))
            r.update(second=t, stream=stream, intended=intended, sent=intended, ok=intended - err, err_5xx=err)
            if intended:
                base = 10 + 5 * random.random() + (200 if in_fault(t) else 0)
                spike = 2500 if random.random() < 0.002 else 0
                for p, m in (("p50", 1), ("p90", 1.8), ("p99", 3), ("p999", 4), ("max", 5)):
                    r[f"{p}_ms"] = f"{base * m + (spike if p == 'max' else 0):.3f}"
                    r[f"u_{p}_ms"] = f"{base * m * 0.6:.3f}"
                r["lag_p99_ms"] = "0.5"
            else:
                for c in cols:
                    if c.endswith("_ms"):
                        r[c] = ""
            f.write(",".join(str(r[c]) for c in cols) + "\n")

# latency.hlog: the demo's busy seconds, tiled over the hour, the clicks stream a copy of events.
lines = open(f"{demo}/latency.hlog").read().splitlines()
head = [l for l in lines if not l.startswith("Tag=")]
busy = {}
for l in lines:
    if l.startswith("Tag="):
        tag, st, rest = l.split(",", 2)
        busy.setdefault(int(float(st)), []).append((tag, rest))
seconds = sorted(s for s in busy if s < 21)
with open(f"{run}/latency.hlog", "w") as f:
    f.write("\n".join(head) + "\n")
    for t in range(N - 60):
        for tag, rest in busy[seconds[t % len(seconds)]]:
            f.write(f"{tag},{t}.000,{rest}\n")
            if tag.startswith("Tag=events"):
                f.write(f"{tag.replace('events', 'clicks')},{t}.000,{rest}\n")

backlog = 0.0
workers = 1
with open(f"{run}/probes.csv", "w") as f, open(f"{run}/activities.jsonl", "w") as a:
    f.write("second,backlog,in_flight,workers,web_instances\n")
    for t in range(N):
        stalled = 1800 <= t < 2100
        backlog = max(0.0, backlog + rate(t) - (0 if stalled else workers * 12))
        want = min(8, max(1, math.ceil(backlog / 20)))
        if t % 30 == 0 and want != workers:
            a.write(json.dumps({"t_ms": t * 1000 + 20, "group": "workers", "kind": "scaling", "from": workers, "to": want, "cause": f"backlog {backlog:.0f}"}) + "\n")
            for i in range(abs(want - workers)):
                kind = "launch" if want > workers else "terminate"
                a.write(json.dumps({"t_ms": t * 1000 + 40 + i, "group": "workers", "kind": kind, "instance": f"i-{t:05d}{i}", "cause": "scaling"}) + "\n")
            workers = want
        web = 1 if any(a_ <= t < a_ + 20 for n, a_, b in faults if n == "kill-web") else 2
        gap = random.random() < 0.005
        f.write(f"{t},{'' if gap else round(backlog)},{0 if stalled else workers * 2},{workers},{web}\n")

# journal.jsonl: the demo's entries, re-timed (and the kill repeated as occurrence #1).
from datetime import datetime, timedelta, timezone
t0 = datetime(2026, 12, 2, 16, 0, 20, 327000, tzinfo=timezone.utc)
def stamp(s):
    return (t0 + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
entries = [json.loads(l) for l in open(f"{demo}/journal.jsonl")]
out = []
for e in entries:
    ev, fault = e["event"], e.get("fault", {})
    name = fault.get("name")
    if ev == "run-started":
        e["time"] = stamp(0); out.append(e)
    elif ev == "run-ended":
        e["time"] = stamp(3590); out.append(e)
    elif name == "kill-web":
        for occ, at in ((0, 900), (1, 2700)):
            c = json.loads(json.dumps(e))
            c["fault"]["id"] = f"kill-web#{occ}"
            c["time"] = stamp(at + (0.07 if ev != "intent" else 0))
            out.append(c)
    elif name == "stall-workers":
        e["time"] = stamp({"intent": 1800, "applied": 1800.02}.get(ev, 2100)); out.append(e)
out.sort(key=lambda e: e["time"])
for i, e in enumerate(out):
    e["seq"] = i + 1
with open(f"{run}/journal.jsonl", "w") as f:
    for e in out:
        f.write(json.dumps(e) + "\n")

# The ledger: 50 messages a second, completed 50 ms to 3 s later (minutes during the stall).
with open(f"{run}/accepted.jsonl", "w") as acc, open(f"{run}/completions.jsonl", "w") as done:
    n = 0
    for t in range(N - 60):
        for i in range(50):
            at = T0_MS + t * 1000 + i * 20
            acc.write(f'{{"id":"bench-0-{n}","stream":"uploads","t_ms":{at}}}\n')
            delay = random.randint(50, 3000) + (max(0, 2100 - t) * 1000 if 1800 <= t < 2100 else 0)
            done.write(f'{{"id":"bench-0-{n}","done_ms":{at + delay},"outcome":"completed","receive_count":1}}\n')
            n += 1
ledger = json.load(open(f"{demo}/ledger.json"))
ledger.update(accepted=n, completed=n)
json.dump(ledger, open(f"{run}/ledger.json", "w"))

verdicts = json.load(open(f"{demo}/verdict.json"))
verdicts["run_id"] = "bench-hour"
windows = [[900, 930], [1800, 2100], [0, 3600], [1800, 2160], [2100, 2500]]
for v, w in zip(verdicts["verdicts"], windows):
    v["window"] = w
json.dump(verdicts, open(f"{run}/verdict.json", "w"), indent=1)
exp = open(f"{demo}/experiment.toml").read()
exp += '\n[[promise]]\ntype = "cost"\ninstances = "workers"\ninstance_hour = 0.0416\n'
open(f"{run}/experiment.toml", "w").write(exp)
EOF

echo "run directory: $(du -sh "$RUN" | cut -f1) ($(wc -l < "$RUN/timeline.csv") timeline rows, $(wc -l < "$RUN/accepted.jsonl") messages)"
start=$(date +%s.%N)
"$BIN" report "$RUN" >/dev/null
end=$(date +%s.%N)
size=$(stat -c %s "$RUN/report.html")
printf 'render: %.2f s with %s\nreport.html: %d bytes (%.2f MB)\n' "$(echo "$end - $start" | bc)" "$BIN" "$size" "$(echo "$size / 1048576" | bc -l)"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync)
for i in 1 2 3; do
  start=$(date +%s.%N)
  timeout 60 "$CHROMIUM" "${flags[@]}" --user-data-dir="$WORK/chromium-$i" --dump-dom "file://$RUN/report.html" > "$WORK/dom-$i.html" 2>/dev/null
  end=$(date +%s.%N)
  ready=$(grep -o 'data-ready-ms="[0-9]*"' "$WORK/dom-$i.html" | grep -o '[0-9]*')
  check=$(grep -o '<body[^>]*data-check="[^"]*"' "$WORK/dom-$i.html" | grep -o 'data-check="[^"]*"')
  printf 'chromium load %d: page ready (charts laid out and checked) at %s ms; wall time with browser start %.2f s; %s\n' "$i" "$ready" "$(echo "$end - $start" | bc)" "$check"
done
