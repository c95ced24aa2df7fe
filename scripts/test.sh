#!/usr/bin/env bash
# Runs the whole test suite. The tests start their own servers on free
# loopback ports, so only the programs are needed: redis-server (the Redis
# tests) and Chromium with chromedriver (the real-browser test), installed
# here from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing from Debian's packages: ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "the tests need ${missing[*]}: install them (apt-get install ${missing[*]}) and run again" >&2
    exit 1
  fi
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "could not install ${missing[*]}: install them with your package manager and run again" >&2
    exit 1
  fi
fi

cargo test --all-targets "$@"
