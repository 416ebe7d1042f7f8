#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for LocalPostgres (the tests' own throwaway server); a no-op when
# /usr/lib/postgresql/<version>/bin/postgres is already there. We never use the package's system cluster, so the
# service is kept from starting during the install (policy-rc.d); the package still creates that cluster on disk.
set -euo pipefail
shopt -s nullglob

installed=(/usr/lib/postgresql/*/bin/postgres)
if ((${#installed[@]})); then
  echo "PostgreSQL server binaries present: ${installed[*]}"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "error: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres) and installing it needs root:" >&2
  echo "  run this script as root, or: sudo apt-get install -y --no-install-recommends postgresql" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: PostgreSQL is not installed and this is not a Debian-based system (no apt-get)" >&2
  exit 1
fi

# invoke-rc.d and deb-systemd-invoke ask policy-rc.d before starting a service; 101 means "forbidden".
# An existing policy (Docker images ship one) is left as it is.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  trap 'rm -f "$policy"' EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends postgresql
echo "PostgreSQL server binaries installed: $(echo /usr/lib/postgresql/*/bin/postgres)"
