#!/usr/bin/env bash
# Run Shoal's whole test suite on a Debian machine with only Rust installed.
#
# The integration tests run real programs next to Shoal: HAProxy 2.6 (to
# compare answers), socat (the runtime-API socket), headless Chromium with
# ChromeDriver (the stats page) and curl. This script installs whichever of
# them is missing (the cluster tests also cut nodes apart with iptables, and
# check the deploy/ files with systemd-analyze and keepalived;
# apt-get, with sudo when not root), then runs
# `cargo test --workspace`. Extra arguments go to cargo test, e.g.
# `./test.sh -p shoal-node --test proxy`.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(haproxy socat curl iproute2 iptables chromium chromium-driver fonts-dejavu-core util-linux systemd keepalived)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "test.sh: installing ${missing[*]}" >&2
    SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

exec cargo test --workspace "$@"
