#!/usr/bin/env bash
# Installs a Debian package the tests need, when it is missing: `postgresql` (the server binaries LocalPostgres
# runs; a throwaway server per test session) or `chromium` (the UI check). Browser downloads (Playwright,
# Puppeteer) reach outside the package registries; apt does not.
set -euo pipefail
shopt -s nullglob

package=${1:?usage: install_system.sh postgresql|chromium}
case $package in
  postgresql) present=(/usr/lib/postgresql/*/bin/postgres) ;;
  chromium) present=($(command -v chromium chromium-browser google-chrome || true)) ;;
  *) echo "error: unknown package $package (postgresql or chromium)" >&2; exit 2 ;;
esac
if ((${#present[@]})); then
  echo "$package present: ${present[*]}"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "error: $package is not installed and installing it needs root:" >&2
  echo "  run this script as root, or: sudo apt-get install -y --no-install-recommends $package" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: $package is not installed and this is not a Debian-based system (no apt-get)" >&2
  exit 1
fi

# PostgreSQL's package would start a system cluster we never use: invoke-rc.d and deb-systemd-invoke ask
# policy-rc.d before starting a service, and 101 means "forbidden". An existing policy (Docker images ship one) stays.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  trap 'rm -f "$policy"' EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "$package"
echo "$package installed"
