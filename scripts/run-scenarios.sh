#!/usr/bin/env bash
# Runs the whole scenario suite (scenarios/) against the node image with the harness.
# Usage: scripts/run-scenarios.sh [image]   (exit status is the harness's: 0 pass, 1 a check
# failed, 2 a run could not be made)
set -euo pipefail
cd "$(dirname "$0")/.."

image="${1:-faultline/chat-node:latest}"
out="${SCENARIO_OUT:-runs/suite}"

cargo build -p harness
rm -rf "$out"
echo "==> harness run scenarios/ (image $image, reports in $out)"
target/debug/harness run --image "$image" --out "$out" scenarios/
