#!/usr/bin/env bash
# Install dist/wardlens_<version>_amd64.deb with apt (its dependencies resolved from the archive), check the
# sizes, the launcher, the menu entry and the site configuration, run the smoke test against /opt/wardlens,
# then purge it and check that nothing it installed is left. Needs root (CI runs as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
DEB="$PWD/dist/wardlens_${VERSION}_amd64.deb"
MAX_DEB_MB="${WARDLENS_MAX_DEB_MB:-130}"
# 420 MB since the server store: psycopg's libpq with its OpenSSL, Kerberos and LDAP client libraries (installer/README.md)
MAX_INSTALLED_MB="${WARDLENS_MAX_INSTALLED_MB:-420}"
fail() { echo "deb-test: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it installs and removes a system package)"
[ -f "$DEB" ] || fail "$DEB is missing (make deb)"
dpkg -s wardlens >/dev/null 2>&1 && fail "wardlens is already installed here; remove it first"
export DEBIAN_FRONTEND=noninteractive
deb_mb=$(( $(stat -c %s "$DEB") / 1000000 ))
[ "$deb_mb" -le "$MAX_DEB_MB" ] || fail "the package is $deb_mb MB, over $MAX_DEB_MB MB"
t0=$(date +%s)
apt-get install -y -qq --no-install-recommends "$DEB" >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$DEB" >/dev/null; }
t1=$(date +%s)
dpkg -s wardlens | grep -q "^Version: $VERSION$" || fail "dpkg does not list wardlens $VERSION"
inst_mb=$(( $(du -sb /opt/wardlens | cut -f1) / 1000000 ))
[ "$inst_mb" -le "$MAX_INSTALLED_MB" ] || fail "/opt/wardlens is $inst_mb MB, over $MAX_INSTALLED_MB MB"
[ "$(command -v wardlens)" = /usr/bin/wardlens ] || fail "no wardlens launcher on PATH"
wardlens --version | grep -q "WardLens $VERSION" || fail "wardlens --version does not say $VERSION"
grep -q '^Exec=/usr/bin/wardlens gui$' /usr/share/applications/wardlens.desktop || fail "desktop entry"
[ -f /usr/share/icons/hicolor/256x256/apps/wardlens.png ] || fail "icon"
[ -f /etc/wardlens/wardlens.conf ] || fail "site configuration"
# the site configuration is read: a shared store path named there is the GUI's default (checked without a screen)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '[store]\npath = %s/site.db\n' "$work" > "$work/wardlens.conf"
WARDLENS_CONFIG="$work/wardlens.conf" wardlens gui --help | grep -q "$work/site.db" || fail "site configuration not read"
# every check of the frozen program, run from the installed package
python3 installer/smoke_test.py --bundle /opt/wardlens || fail "smoke test from /opt/wardlens"
t2=$(date +%s)
apt-get remove --purge -y -qq wardlens >/dev/null
for p in /opt/wardlens /usr/bin/wardlens /usr/share/applications/wardlens.desktop \
         /usr/share/icons/hicolor/256x256/apps/wardlens.png /usr/share/icons/hicolor/scalable/apps/wardlens.svg \
         /etc/wardlens /usr/share/doc/wardlens; do
  [ ! -e "$p" ] || fail "$p is left after purge"
done
dpkg -s wardlens >/dev/null 2>&1 && fail "dpkg still lists wardlens after purge"
echo "deb-test: PASSED: $DEB ($deb_mb MB) installed in $((t1 - t0)) s ($inst_mb MB under /opt/wardlens), smoke test from" \
     "the installed package in $((t2 - t1)) s, purged cleanly"
