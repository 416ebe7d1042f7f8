#!/usr/bin/env bash
# Installs Debian's Chromium for the UI check (scripts/ui_check.py, tests/test_ui.py); a no-op when a Chromium is
# already on PATH. Browser downloads (Playwright, Puppeteer) reach outside the package registries, apt does not.
set -euo pipefail

for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null; then
    echo "Chromium present: $(command -v "$name")"
    exit 0
  fi
done
if [[ $(id -u) -ne 0 ]]; then
  echo "error: Chromium is not installed and installing it needs root:" >&2
  echo "  run this script as root, or: sudo apt-get install -y --no-install-recommends chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: Chromium is not installed and this is not a Debian-based system (no apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium
echo "Chromium installed: $(command -v chromium)"
