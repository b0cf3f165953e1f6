#!/usr/bin/env bash
# What the tests need beyond the application's own libraries: a PostgreSQL server for the server-store tests
# (tests/pgcluster.py starts a throwaway cluster of its own; the package's default cluster is not used).
set -euo pipefail
have_server() { ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; }
have_server && exit 0
exec bash "$(dirname "$0")/apt-install.sh" \
  "The server-store tests need a PostgreSQL server (postgres, initdb, pg_ctl) and skip without one" postgresql
