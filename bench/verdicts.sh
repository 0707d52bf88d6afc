#!/usr/bin/env bash
# How often is a verdict wrong? Runs `demo --quick` and the discrimination matrix's
# experiments (tests/matrix.rs) on the good architecture and on each broken one, N times
# each, J at a time, and counts every promise's pass / fail / not-evaluable against the
# verdict expected below. A false fail (expected pass, got fail) or a false pass (expected
# fail, got pass) is the worst bug shakedown can have; every run whose verdicts differ from
# the expected ones in any way (also not-evaluable, or no verdict at all) is kept for study.
#
# Usage: bench/verdicts.sh [-n N] [-j J] [-a ARCH,...] [-c CASE,...] [-o DIR]
#   -n N        runs per case (default 50)
#   -j J        runs at once (default 2; each starts a sandbox of several processes, and
#               verdicts depend on timing: more than the machine's cores starves them)
#   -a ARCH,..  only these architectures (e.g. -a queued)
#   -c CASE,..  only these experiments (demo-quick, processing-stall, kill-worker-mid-job,
#               sustained-load, bursty-load)
#   -o DIR      where the kept runs and the tallies go (default: a new bench-verdicts-* dir
#               under results/)
# Uses the release binary (<cargo's target dir>/release/shakedown; SHAKEDOWN_BIN overrides),
# building it if missing, and copies it first, so a rebuild meanwhile cannot change it.
# Needs jq or python3. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Expected verdicts: experiment, --arch, then promise=status for each promise judged
# (status: pass, fail, not-evaluable, or several joined by |; promises not named are not
# counted). `demo-quick` runs `shakedown demo --quick`; the others `shakedown run` the file
# tests/experiments/<name>.toml. Keep in step with tests/matrix.rs and docs/sandbox.md.
EXPECTED='
demo-quick          queued              failover=pass buffering=pass no-loss=pass scale-out=pass scale-in=pass
demo-quick          tiered              failover=pass buffering=not-evaluable|fail no-loss=pass
demo-quick          no-health-checks    failover=fail buffering=fail no-loss=pass scale-out=pass scale-in=pass
demo-quick          fixed-fleet         failover=pass buffering=pass no-loss=pass scale-out=pass|fail scale-in=fail
demo-quick          lossy-queue         failover=pass buffering=fail no-loss=fail scale-out=pass scale-in=pass
demo-quick          capped-fleet        failover=pass buffering=pass no-loss=pass scale-out=pass|fail scale-in=pass
sustained-load      queued              no-loss=pass scale-out=pass
sustained-load      capped-fleet        no-loss=pass scale-out=fail
sustained-load      fixed-fleet         no-loss=pass scale-out=fail
bursty-load         queued              no-loss=pass scale-in=pass
bursty-load         flapping            no-loss=pass scale-in=fail
demo-quick          slow-scaler         failover=pass buffering=pass no-loss=pass scale-out=fail scale-in=pass
demo-quick          flapping            failover=pass buffering=pass no-loss=pass scale-out=pass scale-in=pass|fail
processing-stall    queued              failover=pass buffering=pass
processing-stall    monolith            failover=fail buffering=fail
kill-worker-mid-job queued              no-loss=pass
kill-worker-mid-job ack-before-process  no-loss=fail
'

N=50
J=2
ARCHS=
CASES=
OUT=
while getopts "n:j:a:c:o:h" opt; do
  case $opt in
    n) N=$OPTARG ;;
    j) J=$OPTARG ;;
    a) ARCHS=$OPTARG ;;
    c) CASES=$OPTARG ;;
    o) OUT=$OPTARG ;;
    *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
[[ $N =~ ^[1-9][0-9]*$ && $J =~ ^[1-9][0-9]*$ ]] || { echo "-n and -j take a positive number" >&2; exit 2; }

# cargo's own answer: CARGO_TARGET_DIR, or a target-dir from a config file, or target/
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' ||
  echo "${CARGO_TARGET_DIR:-target}")
BIN=${SHAKEDOWN_BIN:-$TARGET_DIR/release/shakedown}
if [[ ! -x $BIN ]]; then
  echo "building $BIN (a cold release build takes ~10 minutes)..." >&2
  cargo build --release --quiet --bin shakedown
fi
OUT=${OUT:-results/bench-verdicts-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/kept" "$OUT/tmp"
cp "$BIN" "$OUT/shakedown"
SD=$OUT/shakedown
TALLY=$OUT/tally.tsv    # case, arch, run, promise, expected, got, outcome
# $OUT/summaries.txt: every run's verdict table
: >"$TALLY"
export AWS_EC2_METADATA_DISABLED=true

# status of each promise of a verdict.json, as "type status" lines
statuses() {
  if command -v jq >/dev/null; then
    jq -r '.verdicts[] | "\(.type) \(.status)"' "$1"
  else
    python3 -c 'import json,sys
for v in json.load(open(sys.argv[1]))["verdicts"]: print(v["type"], v["status"])' "$1"
  fi
}

# one run: case arch i expectations...
one() {
  local case=$1 arch=$2 i=$3; shift 3
  local dir=$OUT/tmp/$case.$arch.$i rc=0 run
  mkdir -p "$dir"
  if [[ $case == demo-quick ]]; then
    timeout 600 "$SD" demo --quick --quiet --arch "$arch" --results "$dir" >"$dir/out.txt" 2>&1 || rc=$?
  else
    timeout 600 "$SD" run "tests/experiments/$case.toml" --quiet --arch "$arch" \
      --results "$dir" --run-id r >"$dir/out.txt" 2>&1 || rc=$?
  fi
  run=$(find "$dir" -mindepth 2 -maxdepth 2 -name verdict.json -printf '%h\n' | head -n1)
  local got=() bad=0 line=""
  if [[ -n $run ]]; then mapfile -t got < <(statuses "$run/verdict.json"); fi
  for e in "$@"; do
    local promise=${e%%=*} want=${e#*=} status=none outcome
    for g in "${got[@]}"; do [[ ${g%% *} == "$promise" ]] && status=${g#* }; done
    if [[ "|$want|" == *"|$status|"* ]]; then outcome=ok
    elif [[ $want == pass && $status == fail ]]; then outcome=false-fail
    elif [[ $want == fail && $status == pass ]]; then outcome=false-pass
    else outcome=other; fi
    [[ $outcome == ok ]] || bad=1
    line+="$case	$arch	$i	$promise	$want	$status	$outcome"$'\n'
  done
  printf '%s' "$line" >>"$TALLY"   # one short append per run: whole lines, no interleaving
  # every run's verdict table, for the margins (how close a pass came to failing)
  { echo "== $case $arch $i (exit $rc)"; sed -n '/^promise /,/^overall/p' "$dir/out.txt"; } \
    >"$dir/summary.txt"
  cat "$dir/summary.txt" >>"$OUT/summaries.txt"
  if ((bad)); then
    mv "$dir" "$OUT/kept/$case.$arch.$i"
    echo "kept $OUT/kept/$case.$arch.$i (exit $rc): $(tr '\n' ' ' <<<"${got[*]:-no verdict}")" >&2
  else
    rm -rf "$dir"
  fi
}

wanted() { [[ -z $2 || ",$2," == *",$1,"* ]]; }

jobs_list=()
while read -r case arch expect; do
  [[ -n $case ]] || continue
  wanted "$arch" "$ARCHS" && wanted "$case" "$CASES" || continue
  jobs_list+=("$case $arch $expect")
done <<<"$EXPECTED"
((${#jobs_list[@]})) || { echo "no case matches -a/-c" >&2; exit 2; }

started=$SECONDS
echo "$((N * ${#jobs_list[@]})) runs, $J at a time; binary $BIN; output $OUT" >&2
# Interleave the cases (round i of every case, then round i+1) so that a slow period of
# the machine spreads over all of them rather than hitting one case's runs.
for ((i = 1; i <= N; i++)); do
  for job in "${jobs_list[@]}"; do
    while (($(jobs -rp | wc -l) >= J)); do wait -n || true; done
    # shellcheck disable=SC2086 # job is "case arch expectations...", split on purpose
    set -- $job
    one "$1" "$2" "$i" "${@:3}" &
  done
  echo "round $i/$N started after $((SECONDS - started)) s" >&2
done
wait

echo
echo "$N runs per case, $J at a time, $((SECONDS - started)) s; kept runs: $OUT/kept"
awk -F'\t' '
  { k = $1 " " $2 "\t" $4; want[k] = $5; n[k]++; c[k, $6]++; o[k, $7]++
    if (!(k in seen)) { seen[k] = 1; order[++m] = k } }
  END {
    printf "%-40s %-10s %-18s %5s %5s %5s %5s %10s %10s %5s\n", "experiment / arch", "promise", "expected", "pass", "fail", "n/e", "none", "false-fail", "false-pass", "other"
    for (i = 1; i <= m; i++) { k = order[i]; split(k, p, "\t")
      printf "%-40s %-10s %-18s %5d %5d %5d %5d %10d %10d %5d\n", p[1], p[2], want[k], c[k, "pass"], c[k, "fail"], c[k, "not-evaluable"], c[k, "none"], o[k, "false-fail"], o[k, "false-pass"], o[k, "other"]
      bad += o[k, "false-fail"] + o[k, "false-pass"] }
    exit (bad > 0)
  }' "$TALLY"
