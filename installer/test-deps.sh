#!/usr/bin/env bash
# What the tests need beyond the application's own libraries: a PostgreSQL server for the server-store tests
# (tests/pgcluster.py starts a throwaway cluster of its own; the package's default cluster is not used).
set -euo pipefail
have_server() { ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; }
have_server && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "The server-store tests need a PostgreSQL server (postgres, initdb, pg_ctl); they skip without one." >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
else
  echo "Not root: the server-store tests skip unless an administrator runs: apt-get install postgresql" >&2
fi
