#!/usr/bin/env bash
# Fails with a clear message when the Docker engine cannot be reached (the image, the demo and
# the scenario suite all need it).
set -euo pipefail

if ! command -v docker >/dev/null 2>&1; then
    echo "error: the docker command is not installed. On Debian: apt-get install -y docker.io" >&2
    exit 1
fi
if ! err="$(docker info 2>&1 >/dev/null)"; then
    echo "error: the Docker engine is not reachable (${DOCKER_HOST:-unix:///var/run/docker.sock})." >&2
    echo "  start it (systemctl start docker, or dockerd &) and make sure you may use it" >&2
    echo "  (root, or a member of the docker group). docker said:" >&2
    printf '%s\n' "$err" | sed 's/^/    /' | head -5 >&2
    exit 1
fi
