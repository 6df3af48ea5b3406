#!/usr/bin/env bash
# Installs the Debian packages Chorus builds and tests with, when any is missing.
# Usage: scripts/install-deps.sh [package ...]   (defaults: what the build needs)
set -euo pipefail
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(libhiredis-dev zlib1g-dev pkg-config)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
run apt-get update -qq
DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
