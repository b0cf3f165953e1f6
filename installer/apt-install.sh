#!/usr/bin/env bash
# apt-install.sh WHY PKG...: install Debian packages as root (or with password-less sudo); otherwise say, after WHY,
# what an administrator should run. Never fails the caller: what needs the packages says so itself, or skips.
set -euo pipefail
why="$1"; shift
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$why (or your distribution's equivalents): $*" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
else
  echo "Not root: $why; please ask an administrator to run: apt-get install $*" >&2
fi
