#!/usr/bin/env bash
# Installs what vidbuilder needs on Debian/Ubuntu, skipping what is already there.
#   scripts/setup.sh           ffmpeg (the server and `vidbuilder render`)
#   scripts/setup.sh --tests   ffmpeg, and what the tests use: Python's standardwebhooks (an
#                              independent webhook-signature verifier) and selenium, Debian's
#                              chromium and chromium-driver (the studio's browser test)
# Uses apt-get (through sudo when not root) and pip; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=false
case "${1:-}" in
  --tests) tests=true ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--tests]" >&2; exit 2 ;;
esac

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=false
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get not found; install these yourself: $*" >&2
    exit 1
  fi
  if ! $apt_updated; then
    sudo_ apt-get update -qq
    apt_updated=true
  fi
  echo "== installing $* (Debian packages)"
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
if $tests; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi
ffmpeg -hide_banner -version | head -1

if $tests; then
  pip_install() {
    python3 -m pip install -q "$@" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "$@"
  }
  python3 -c 'import standardwebhooks, selenium' 2>/dev/null \
    || { echo "== installing Python packages for the tests"; pip_install standardwebhooks -r tests/browser/requirements.txt; }
  chromium --version 2>/dev/null | head -1 || true
fi
