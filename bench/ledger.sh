#!/usr/bin/env bash
# Memory and time of the offline ledger: `shakedown analyze` on a run whose accepted.jsonl and
# completions.jsonl hold MESSAGES messages (default 2,000,000), a few lost and duplicated.
# The run directory is a real `demo --quick` run with its ledger files replaced by synthetic
# ones of the same shape. Usage: bench/ledger.sh [messages]
set -euo pipefail

MESSAGES="${1:-2000000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export AWS_EC2_METADATA_DISABLED=true
BIN="$CARGO_TARGET_DIR/release/shakedown"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT"
cargo build --release --quiet
echo "== a real run to start from (demo --quick) =="
"$BIN" demo --quick -q --results "$WORK" >/dev/null || true
RUN="$(ls -d "$WORK"/*/ | head -n 1)"

echo "== $MESSAGES synthetic messages =="
python3 - "$RUN" "$MESSAGES" <<'PY'
import json, sys
run, n = sys.argv[1], int(sys.argv[2])
first = json.loads(open(f"{run}/accepted.jsonl").readline())
tag = first["id"].rsplit("-", 2)[0]
base = first["t_ms"]
streams = ["uploads", "events"]
per = n // len(streams)
with open(f"{run}/accepted.jsonl", "w") as a, open(f"{run}/completions.jsonl", "w") as c:
    for s, name in enumerate(streams):
        for q in range(per):
            t = base + q // 50
            a.write(f'{{"id":"{tag}-{s}-{q}","stream":"{name}","t_ms":{t}}}\n')
            if q % 1_000_000 == 12_345:
                continue  # lost
            line = f'{{"id":"{tag}-{s}-{q}","done_ms":{t + 200 + q % 5000},"outcome":"completed","receive_count":1}}\n'
            c.write(line)
            if q % 100_000 == 7:
                c.write(line)  # done twice
PY
ls -l "$RUN/accepted.jsonl" "$RUN/completions.jsonl" | awk '{printf "%s %.0f MiB\n", $9, $5/1048576}'

echo "== shakedown analyze =="
START=$(date +%s.%N)
python3 "$ROOT/bench/maxrss.py" "$BIN" analyze "$RUN" 2>"$WORK/rss" | grep -E "^no-loss|^end-to-end" || true
END=$(date +%s.%N)
KB=$(grep MAXRSS_KB "$WORK/rss" | awk '{print $2}')
awk -v kb="$KB" -v n="$MESSAGES" -v s="$START" -v e="$END" 'BEGIN {
    printf "RESULT messages=%d seconds=%.2f peak_rss_mib=%.1f bytes_per_message=%.1f\n", n, e - s, kb / 1024, kb * 1024 / n }'
