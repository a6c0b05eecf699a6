#!/usr/bin/env bash
# Install the Debian packages troupe needs to build and test. Silent when
# everything is already installed. Works as root, or through sudo.
set -euo pipefail

packages=(build-essential cmake pkg-config libzmq3-dev libmsgpack-dev libcmocka-dev)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: not a Debian-like system; install by hand: ${packages[*]}" >&2
    exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    # Without a terminal (CI), fail instead of waiting for a password.
    if [ -t 0 ]; then sudo=(sudo); else sudo=(sudo -n); fi
else
    echo "deps.sh: missing ${missing[*]}; run as root or install sudo." >&2
    exit 1
fi

echo "deps.sh: installing ${missing[*]}"
# sudo resets the environment, so pass DEBIAN_FRONTEND through env(1).
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q)
"${apt[@]}" update
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"
