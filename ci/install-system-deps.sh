#!/usr/bin/env bash
# Install the Debian packages listed in a file (default ci/system-packages.txt; root, Debian 12).
#   bash ci/install-system-deps.sh [LIST]
# Skips the apt run when every package is already installed, so `make test` is fast
# on a prepared machine and complete on a fresh one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
list=${1:-"$here/system-packages.txt"}
mapfile -t packages < <(grep -v '^\s*#' "$list" | grep -v '^\s*$')
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "ci: system packages present: ${packages[*]}"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ci: missing Debian packages: ${missing[*]}; run this script as root (or install them)" >&2
    exit 1
fi
echo "ci: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# wireshark-common asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
# Peers must not start as services: freeradius and l2tpns (and xl2tpd) start themselves at install
# through invoke-rc.d/deb-systemd-invoke, which obey policy-rc.d; exit 101 = "action forbidden".
# (l2tpns's postinst runs `invoke-rc.d l2tpns start || exit 1`; its default config wants eth0.)
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# ci/install-system-deps.sh: no service starts while it installs\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Peers must not run as services outside the namespaces our tests create.
for svc in xl2tpd l2tpns freeradius; do
    if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
    pkill -x "$svc" >/dev/null 2>&1 || true
done
echo "ci: installed ${missing[*]}"
