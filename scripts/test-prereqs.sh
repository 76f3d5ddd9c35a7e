#!/usr/bin/env bash
# Everything `make test` needs, installed when it is missing and we are allowed to.
set -euo pipefail

say() { echo "==> $*"; }
fail() { echo "error: $*" >&2; exit 1; }
# Installs a Debian package when we may (root and apt-get); returns non-zero when we may not.
apt_install() {
    local package=$1 why=$2
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
    say "installing $package ($why)"
    # Called in a condition, where set -e is off: an apt failure must still stop the run.
    apt-get update -qq || fail "apt-get update failed (installing $package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null ||
        fail "apt-get install $package failed"
}

if ! command -v cargo >/dev/null 2>&1; then
    fail "cargo is not installed: install a Rust toolchain (https://rustup.rs), then run make test again"
fi

# rustfmt and clippy are separate rustup components.
missing_components=()
cargo fmt --version >/dev/null 2>&1 || missing_components+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing_components+=(clippy)
if ((${#missing_components[@]})); then
    command -v rustup >/dev/null 2>&1 || fail "cargo ${missing_components[*]} missing and no rustup to add them"
    say "rustup component add ${missing_components[*]}"
    rustup component add "${missing_components[@]}"
fi

# The static image binary is built for this explicit target (it keeps proc-macros dynamic).
if command -v rustup >/dev/null 2>&1 &&
    ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-gnu; then
    say "rustup target add x86_64-unknown-linux-gnu"
    rustup target add x86_64-unknown-linux-gnu
fi

# Partition and packet-loss faults are nftables rules in the nodes' network namespaces.
if ! command -v nft >/dev/null 2>&1 &&
    ! apt_install nftables "partition faults need the nft command"; then
    echo "warning: nft is missing and cannot be installed here (needs root and apt-get);" >&2
    echo "  scenarios with partitions will report that they cannot run." >&2
fi

# The report's real-browser test renders report.html in headless Chromium.
if ! command -v chromium >/dev/null 2>&1 &&
    ! apt_install chromium "the report.html browser test"; then
    fail "chromium is missing and cannot be installed here (needs root and apt-get): install the chromium package"
fi

"$(dirname "$0")/require-docker.sh"
