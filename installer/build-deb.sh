#!/usr/bin/env bash
# Build dist/wardlens_<version>_amd64.deb from the frozen bundle dist/WardLens (installer/build.sh):
#   /opt/wardlens/                 the application (GUI and command line in one executable)
#   /usr/bin/wardlens              the launcher on PATH
#   /usr/share/applications/wardlens.desktop and the icons (menu entry)
#   /etc/wardlens/wardlens.conf    site configuration (a conffile: upgrades keep the admin's edits)
# Depends on the system libraries the bundle does not carry (installer/README.md, "Target machine").
# dpkg-deb only: no network. Compressed with xz; prints the package and installed sizes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
APPDIR=dist/WardLens
[ -x "$APPDIR/WardLens" ] || { echo "build-deb.sh: $APPDIR is missing; run installer/build.sh first" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb is needed (Debian/Ubuntu)" >&2; exit 1; }
t0=$(date +%s)
STAGE="build/deb/wardlens_${VERSION}_amd64"
DEB="dist/wardlens_${VERSION}_amd64.deb"
rm -rf "$STAGE" "$DEB"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
         "$STAGE/usr/share/icons/hicolor/256x256/apps" "$STAGE/usr/share/icons/hicolor/scalable/apps" \
         "$STAGE/usr/share/doc/wardlens" "$STAGE/etc/wardlens"
cp -a "$APPDIR" "$STAGE/opt/wardlens"
rm -f "$STAGE/opt/wardlens/install-desktop-entry.sh"   # the package installs its menu entry itself
chmod -R u=rwX,go=rX "$STAGE/opt/wardlens"

cat > "$STAGE/usr/bin/wardlens" <<'EOF'
#!/bin/sh
# WardLens (Debian package). Site configuration: /etc/wardlens/wardlens.conf
exec /opt/wardlens/WardLens "$@"
EOF
chmod 0755 "$STAGE/usr/bin/wardlens"
sed -e "s|^Exec=.*|Exec=/usr/bin/wardlens gui|" installer/wardlens.desktop > "$STAGE/usr/share/applications/wardlens.desktop"
install -m 0644 "$APPDIR/wardlens.png" "$STAGE/usr/share/icons/hicolor/256x256/apps/wardlens.png"
install -m 0644 "$APPDIR/wardlens.svg" "$STAGE/usr/share/icons/hicolor/scalable/apps/wardlens.svg"
install -m 0644 installer/wardlens.conf "$STAGE/etc/wardlens/wardlens.conf"
cat > "$STAGE/usr/share/doc/wardlens/copyright" <<'EOF'
WardLens: offline clinical risk desk. Proprietary.
Bundled libraries and data sets, with their licences: Help > About in the application, and
/opt/wardlens/_internal/resources/about.json.
Demo data: UCI "Diabetes 130-US hospitals for years 1999-2008" (Strack et al. 2014), CC BY 4.0.
EOF
chmod 0644 "$STAGE/usr/share/applications/wardlens.desktop" "$STAGE/usr/share/doc/wardlens/copyright"

INSTALLED_KB="$(du -sk --apparent-size "$STAGE" | cut -f1)"
cat > "$STAGE/DEBIAN/control" <<EOF
Package: wardlens
Version: ${VERSION}
Architecture: amd64
Maintainer: WardLens team <wardlens@localhost>
Section: science
Priority: optional
Installed-Size: ${INSTALLED_KB}
Depends: libc6 (>= 2.36), libgl1, libegl1, libxcb1, fontconfig, fonts-dejavu-core, fonts-droid-fallback
Recommends: libcups2
Description: offline clinical risk desk for small hospitals
 WardLens keeps an encrypted patient store on the workstation and shows 30-day
 readmission risk at discharge (and why), length of stay, bed and staff
 forecasts and chest X-ray findings, and prints risk reports. Nothing leaves
 the machine. Run "wardlens" for the application, "wardlens --help" for the
 command line.
EOF
echo "/etc/wardlens/wardlens.conf" > "$STAGE/DEBIAN/conffiles"
cat > "$STAGE/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q /usr/share/applications || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
fi
exit 0
EOF
cat > "$STAGE/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# Removes only what the package installed: stores, key files and backups are the site's data and stay.
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q /usr/share/applications || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
fi
if [ "$1" = purge ]; then
  rmdir /etc/wardlens 2>/dev/null || true
fi
exit 0
EOF
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/postrm"
find "$STAGE" -name __pycache__ -prune -exec rm -rf {} +
THREADS=()
dpkg-deb --help 2>/dev/null | grep -q -- '--threads-max' && THREADS=(--threads-max="$(nproc)")
dpkg-deb --root-owner-group "${THREADS[@]}" -Zxz -z6 --build "$STAGE" "$DEB" >/dev/null
t1=$(date +%s)
DEB_BYTES=$(stat -c %s "$DEB")
APP_BYTES=$(du -sb "$STAGE/opt/wardlens" | cut -f1)
echo "build-deb.sh: $DEB $((DEB_BYTES / 1000000)) MB (xz), installs $((APP_BYTES / 1000000)) MB under /opt/wardlens; $((t1 - t0)) s"
