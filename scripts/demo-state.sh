#!/usr/bin/env bash
# The demo cluster as its nodes see it. Each running node is asked with
#   docker exec faultline-demo-n<i> /chat-node status --json
# (the image has no shell; the binary is the only tool in it).
#
# Usage:
#   demo-state.sh table          print node / address / state / role / epoch / leader / members
#   demo-state.sh wait SECONDS   wait until all 5 nodes see each other and agree on one leader
#   demo-state.sh leader         print the container name of the current leader
#   demo-state.sh next-steps     print what to try next
set -euo pipefail

PROJECT=faultline-demo
NETWORK=faultline-demo-net
NODES=(1 2 3 4 5)
CLUSTER_SIZE=${#NODES[@]}

container() { echo "$PROJECT-n$1"; }

# Container state: running, paused, exited, ... or "absent".
state_of() {
    docker inspect -f '{{.State.Status}}' "$(container "$1")" 2>/dev/null || echo absent
}

# The node's static address (also known while it is stopped).
address_of() {
    docker inspect -f "{{with index .NetworkSettings.Networks \"$NETWORK\"}}{{if .IPAddress}}{{.IPAddress}}{{else}}{{with .IPAMConfig}}{{.IPv4Address}}{{end}}{{end}}{{end}}" \
        "$(container "$1")" 2>/dev/null || true
}

# The node's ClusterStatus JSON on one line, or nothing when it does not answer.
status_of() {
    timeout 5 docker exec "$(container "$1")" /chat-node status --json 2>/dev/null | tr -d '\n' || true
}

# Top-level fields of a ClusterStatus line. The members array only has id/addr/alive, so these
# names are unambiguous without a JSON tool (a fresh machine need not have jq).
number_field() { sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p" <<<"$2"; }
string_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" <<<"$2"; }
alive_members() { grep -o '"alive":true' <<<"$1" | wc -l | tr -d ' '; }

table() {
    printf '%-5s %-18s %-15s %-8s %-10s %-6s %-7s %-8s %s\n' \
        NODE CONTAINER ADDRESS STATE ROLE EPOCH LEADER MEMBERS COMMIT
    local i state json role epoch leader alive commit
    for i in "${NODES[@]}"; do
        state="$(state_of "$i")"
        role=- epoch=- leader=- alive=- commit=-
        if [ "$state" = running ]; then
            json="$(status_of "$i")"
            if [ -n "$json" ]; then
                role="$(string_field role "$json")"
                epoch="$(number_field epoch "$json")"
                leader="$(number_field leader "$json")"
                alive="$(alive_members "$json")/$(number_field cluster_size "$json")"
                commit="$(number_field commit_index "$json")"
            else
                role="no answer"
            fi
        fi
        printf '%-5s %-18s %-15s %-8s %-10s %-6s %-7s %-8s %s\n' \
            "$i" "$(container "$i")" "$(address_of "$i")" "$state" "${role:--}" "${epoch:--}" \
            "${leader:--}" "$alive" "${commit:--}"
    done
}

# True when every node runs, sees the others alive, and all agree on one leader in one epoch.
converged() {
    local i json role epoch leader alive leaders=0 agreed_leader="" agreed_epoch=""
    for i in "${NODES[@]}"; do
        [ "$(state_of "$i")" = running ] || return 1
        json="$(status_of "$i")"
        [ -n "$json" ] || return 1
        role="$(string_field role "$json")"
        epoch="$(number_field epoch "$json")"
        leader="$(number_field leader "$json")"
        alive="$(alive_members "$json")"
        [ -n "$leader" ] || return 1
        # A node may or may not list itself among its members.
        [ "$alive" -ge $((CLUSTER_SIZE - 1)) ] || return 1
        [ "$role" = leader ] && leaders=$((leaders + 1))
        agreed_leader="${agreed_leader:-$leader}"
        agreed_epoch="${agreed_epoch:-$epoch}"
        [ "$leader" = "$agreed_leader" ] && [ "$epoch" = "$agreed_epoch" ] || return 1
    done
    [ "$leaders" -eq 1 ]
}

wait_converged() {
    local timeout="$1" start=$SECONDS
    echo "==> waiting up to ${timeout}s for the 5 nodes to discover each other and elect a leader"
    until converged; do
        if ((SECONDS - start >= timeout)); then
            echo >&2
            echo "error: the cluster did not converge within ${timeout}s (all 5 nodes up, each seeing" >&2
            echo "  the others, one leader that everyone agrees on). What the nodes say now:" >&2
            table >&2
            echo "  look at the events: make logs   (or raise the wait: make demo DEMO_TIMEOUT=60)" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "==> converged after $((SECONDS - start))s"
}

leader() {
    local i json best="" best_epoch=-1 epoch
    for i in "${NODES[@]}"; do
        [ "$(state_of "$i")" = running ] || continue
        json="$(status_of "$i")"
        [ "$(string_field role "$json")" = leader ] || continue
        epoch="$(number_field epoch "$json")"
        # A partitioned or just-woken old leader may still think it leads: trust the newest epoch.
        if [ "${epoch:-0}" -gt "$best_epoch" ]; then
            best="$(container "$i")" best_epoch="${epoch:-0}"
        fi
    done
    if [ -z "$best" ]; then
        echo "error: no node says it is the leader right now; see: make state" >&2
        exit 1
    fi
    echo "$best"
}

next_steps() {
    cat <<'EOF'

Chat (two terminals, two people):
  make chat USER=alice        choose a password (first login registers the name), then: /join general, type a line, /msg bob hi, /who, /status, /help
  make chat USER=bob

Break it, then look again with `make state`:
  make kill-leader            SIGKILL the leader; the others elect a new one
  make pause NODE=3           freeze a node (a long GC stall); make resume NODE=3 wakes it
  make restart NODE=3         bring a killed node back (same id, address and data)
  make logs                   follow the nodes' JSON events

Stop it:
  make demo-down              removes the demo's containers and network, nothing else
EOF
}

case "${1:-table}" in
table) table ;;
wait) wait_converged "${2:-30}" ;;
leader) leader ;;
next-steps) next_steps ;;
*)
    echo "usage: $0 table | wait SECONDS | leader | next-steps" >&2
    exit 2
    ;;
esac
