#!/usr/bin/env bash
# The real-browser test of report.html: renders a run's report in headless Chromium and
# checks that the page's script ran without errors, drew one lane per node, loaded within a
# few seconds, and that the screenshot is not blank.
# Usage: scripts/browser-test.sh [RUN_DIR]   (default runs/suite/leader-crash)
set -euo pipefail
cd "$(dirname "$0")/.."

run="${1:-runs/suite/leader-crash}"
page="$(cd "$run" && pwd)/report.html"
fail() { echo "browser test: FAIL: $*" >&2; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || fail "no chromium: install the Debian package chromium (scripts/test-prereqs.sh does)"
[ -f "$page" ] || fail "$page is missing (run the scenario first: harness run --out $run scenarios/leader-crash.yaml)"
nodes="$(grep -o '"nodes": *[0-9]*' "$run/summary.json" | head -1 | grep -o '[0-9]*$')"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --user-data-dir="$tmp/profile")

start=$(date +%s%N)
timeout 60 "$browser" "${flags[@]}" --virtual-time-budget=5000 --dump-dom "file://$page" >"$tmp/dom.html" 2>"$tmp/err.log" ||
    fail "chromium could not render $page: $(tail -3 "$tmp/err.log")"
load_ms=$((($(date +%s%N) - start) / 1000000))
attr() { grep -o "$1=\"[^\"]*\"" "$tmp/dom.html" | head -1 | cut -d'"' -f2; }
[ "$(attr data-fl-ready)" = 1 ] || fail "the page's script did not finish (data-fl-ready=$(attr data-fl-ready))"
[ "$(attr data-fl-errors)" = 0 ] || fail "script errors: $(grep -o 'script error[^<]*' "$tmp/dom.html" | head -3)"
[ "$(attr data-fl-lanes)" = "$nodes" ] || fail "$(attr data-fl-lanes) lanes drawn for $nodes nodes"
render_ms="$(attr data-fl-render-ms)"
((render_ms < 3000)) || fail "the page took $render_ms ms to draw"
((load_ms < 20000)) || fail "chromium took $load_ms ms to load the page"

timeout 60 "$browser" "${flags[@]}" --window-size=1400,1000 --virtual-time-budget=5000 \
    --screenshot="$tmp/shot.png" "file://$page" >/dev/null 2>&1 || fail "no screenshot"
# Not blank: a blank 1400x1000 PNG compresses to a few KB; the drawn timeline is far larger.
bytes="$(stat -c %s "$tmp/shot.png")"
((bytes > 40000)) || fail "the screenshot looks blank ($bytes bytes)"
stats="$bytes bytes"
echo "browser test: PASS: $page — $nodes lanes, no script errors, drawn in $render_ms ms, loaded in $load_ms ms, screenshot $stats"
