#!/usr/bin/env bash
# Runs `harness chaos` over many seeds and prints one line per seed and a summary.
# Usage: scripts/chaos.sh IMAGE SEEDS [DURATION] [FIRST]
#   make chaos SEEDS=20 DURATION=60s FIRST=1 [FAULTS=kill,pause,partition] [MAX_FAULTY=2]
# Reports (the schedule, history, summary.json, junit.xml) go to runs/chaos/seed-<n>/.
# HARNESS=path runs that harness binary instead of building target/debug/harness (a long
# run keeps its own copy, so rebuilding the workspace meanwhile does not change it).
# Exit status: 0 when every seed passed, 1 when any failed, 2 when any could not run.
set -uo pipefail
cd "$(dirname "$0")/.."

image="${1:-faultline/chat-node:latest}"
seeds="${2:-10}"
duration="${3:-30s}"
first="${4:-1}"
out="${CHAOS_OUT:-runs/chaos}"
extra=()
[ -n "${FAULTS:-}" ] && extra+=(--faults "$FAULTS")
[ -n "${MAX_FAULTY:-}" ] && extra+=(--max-faulty "$MAX_FAULTY")
[ -n "${ELECTION:-}" ] && extra+=(--election "$ELECTION")

harness="${HARNESS:-}"
if [ -z "$harness" ]; then
  cargo build -q -p harness || exit 2
  harness=target/debug/harness
fi
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
worst=0
echo "==> harness chaos: seeds $first..$((first + seeds - 1)), ${duration} each, image $image (reports in $out/)"
for ((seed = first; seed < first + seeds; seed++)); do
  dir="$out/seed-$seed"
  rm -rf "$dir"
  "$harness" chaos --seed "$seed" --duration "$duration" --image "$image" \
    --out "$dir" "${extra[@]}" > "$out/seed-$seed.log" 2>&1
  rc=$?
  line="$(grep '^chaos seed=' "$out/seed-$seed.log" || echo "chaos seed=$seed verdict=ERROR (exit $rc; see $out/seed-$seed.log)")"
  echo "$line" | tee -a "$summary"
  [ "$rc" -gt "$worst" ] && worst=$rc
done
echo
awk '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
  { n++; v[f["verdict"]]++
    if (f["lost"] ~ /^[0-9]+$/) lost += f["lost"]; else unknown++
    if (f["duplicated"] ~ /^[0-9]+$/) dup += f["duplicated"]
    if (f["split_brain"] == "YES") sb++
    if (f["liveness"] == "MISSED") missed++
    if (f["failed_checks"] != "" && f["failed_checks"] != "-") {
      k = split(f["failed_checks"], a, ","); for (i = 1; i <= k; i++) bad[a[i]]++ }
    delete f }
  END {
    printf "chaos summary: %d seeds: %d PASS, %d FAIL, %d ERROR; lost %d, duplicated %d, split brain in %d, liveness missed in %d\n",
      n, v["PASS"], v["FAIL"], v["ERROR"], lost, dup, sb, missed
    for (c in bad) printf "  %s failed in %d seeds\n", c, bad[c]
  }' "$summary"
exit "$worst"
