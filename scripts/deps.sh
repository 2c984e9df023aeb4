#!/usr/bin/env bash
# deps.sh run|test - install the Debian 12 packages digestmap needs, only those missing.
# Sourced-or-run by scripts/run and scripts/test; needs root (or sudo) only when something
# is missing.
set -euo pipefail

run_pkgs=(gcc libc6-dev make cmake pkg-config libevent-dev libjansson-dev libhiredis-dev
          libssl-dev libhttp-parser-dev redis-server curl ca-certificates)
# chromium (and a font for its screenshots) drives the explorer page's test (docs/ui.md);
# nginx-light and wrk run the bench smoke (bench/README.md).
test_pkgs=(libcmocka-dev redis-tools jq openssl procps clang-14 clang-format-14 libclang-rt-14-dev python3
           python3-yaml iproute2 chromium fonts-dejavu-core nginx-light wrk)

want=("${run_pkgs[@]}")
[ "${1:-run}" = test ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "digestmap: installing missing packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "digestmap: these packages are missing and I am not root: ${missing[*]}" >&2
    echo "           install them with: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
