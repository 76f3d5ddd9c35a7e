#!/usr/bin/env bash
# Real-network smoke test without Docker (run as root):
#   3 `chat-node serve` processes, each in its own network namespace, on a private bridge
#   (10.99.0.0/24), plus a client namespace running two users (node/examples/netns_smoke.rs):
#   discovery by broadcast, a private message, a room message, an offline message delivered
#   at login, and a SIGKILL of the leader after which chat continues.
#
#   scripts/netns-cluster.sh            # NODES=5 for five servers; KEEP_LOGS=1 keeps the logs
#
# Everything it creates is named fl-* and removed on exit (also on Ctrl-C and failure).
set -euo pipefail

NODES=${NODES:-3}
SUBNET=10.99.0
LAN=fl-lan                      # namespace that holds the bridge (its firewall is empty)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/fl-netns.XXXXXX)
PIDS=()

say() { printf '%s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for ns in $(ip netns list | awk '{print $1}' | grep '^fl-' || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    if [[ $rc -ne 0 || -n "${KEEP_LOGS:-}" ]]; then
        say "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT INT TERM

[[ $(id -u) -eq 0 ]] || die "run as root (network namespaces need CAP_NET_ADMIN)"
command -v ip >/dev/null || die "the ip command is missing (apt-get install iproute2)"
ip netns list | grep -q "^fl-" && die "fl-* namespaces exist already (another run?); remove them with ip netns del <name>"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
say "building chat-node and the smoke client…"
(cd "$ROOT" && cargo build -q -p chat-node --bin chat-node --example netns_smoke)
BIN=$CARGO_TARGET_DIR/debug/chat-node
SMOKE=$CARGO_TARGET_DIR/debug/examples/netns_smoke

# A namespace with a veth into the bridge: attach <ns> <ip>
attach() {
    local ns=$1 addr=$2 i=$3
    ip netns add "$ns"
    ip link add "fl-h$i" type veth peer name "fl-p$i"
    ip link set "fl-h$i" netns "$LAN"
    ip link set "fl-p$i" netns "$ns"
    ip -n "$LAN" link set "fl-h$i" master br0 up
    ip -n "$ns" link set "fl-p$i" name eth0
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}

ip netns add "$LAN"
# No multicast snooping: without an IGMP querier it would stop forwarding the heartbeat group.
ip -n "$LAN" link add br0 type bridge mcast_snooping 0
ip -n "$LAN" link set br0 up

for i in $(seq 1 "$NODES"); do
    attach "fl-n$i" "$SUBNET.$((10 + i))" "$i"
done
attach fl-c1 "$SUBNET.100" 100

# Every member gets the same fresh secret (peer datagrams are authenticated with it).
SECRET_FILE="$WORK/cluster-secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SECRET_FILE"

start=$(date +%s%N)
PIDMAP=()
for i in $(seq 1 "$NODES"); do
    ip netns exec "fl-n$i" "$BIN" serve --id "$i" --cluster-size "$NODES" \
        --heartbeat 100ms --failure-timeout 500ms --data-dir "$WORK/data$i" \
        --cluster-secret-file "$SECRET_FILE" \
        >"$WORK/n$i.events" 2>"$WORK/n$i.log" &
    PIDS+=($!)
    PIDMAP+=(--pid "$i:$!")
done

say "waiting for a leader…"
leader=""
for _ in $(seq 1 150); do
    leader=$(cat "$WORK"/n*.events | grep -o '"event":"leader_elected","leader":[0-9]*' | head -1 | grep -o '[0-9]*$' || true)
    [[ -n "$leader" ]] && break
    sleep 0.1
done
[[ -n "$leader" ]] || die "no leader_elected event within 15 s (see $WORK/n*.events)"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
say "leader $leader elected $elapsed ms after start"

set +e
ip netns exec fl-c1 "$SMOKE" --nodes "$NODES" "${PIDMAP[@]}" | tee "$WORK/smoke.out"
rc=${PIPESTATUS[0]}
set -e
for i in $(seq 1 "$NODES"); do
    grep -q '"event":"input_rejected"' "$WORK/n$i.events" && say "note: node $i rejected input (see $WORK/n$i.events)"
done
[[ $rc -eq 0 ]] || die "smoke client failed"
say "PASS"
