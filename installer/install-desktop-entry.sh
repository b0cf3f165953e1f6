#!/usr/bin/env bash
# Ships beside the WardLens executable. Registers the desktop entry and icon for WardLens from wherever
# this folder was unpacked (for example /opt/WardLens or ~/Apps/WardLens).
#   ./install-desktop-entry.sh            for the current user (~/.local/share)
#   sudo ./install-desktop-entry.sh --system   for all users (/usr/local/share)
#   ./install-desktop-entry.sh --uninstall [--system]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="${XDG_DATA_HOME:-$HOME/.local/share}"
MODE=install
for a in "$@"; do
  case "$a" in
    --system) PREFIX=/usr/local/share ;;
    --uninstall) MODE=uninstall ;;
    *) echo "usage: $0 [--system] [--uninstall]" >&2; exit 2 ;;
  esac
done
APPS="$PREFIX/applications"
ICONS="$PREFIX/icons/hicolor"
if [ "$MODE" = uninstall ]; then
  rm -f "$APPS/wardlens.desktop" "$ICONS/256x256/apps/wardlens.png" "$ICONS/scalable/apps/wardlens.svg"
  echo "Removed the WardLens desktop entry from $PREFIX"
  exit 0
fi
[ -x "$HERE/WardLens" ] || { echo "WardLens executable not found next to this script ($HERE)" >&2; exit 1; }
mkdir -p "$APPS" "$ICONS/256x256/apps" "$ICONS/scalable/apps"
install -m 0644 "$HERE/wardlens.png" "$ICONS/256x256/apps/wardlens.png"
install -m 0644 "$HERE/wardlens.svg" "$ICONS/scalable/apps/wardlens.svg"
# Exec with the real location (quoted for the desktop-entry spec if it holds spaces)
exec_path="$HERE/WardLens"
case "$exec_path" in *" "*) exec_path="\"$exec_path\"" ;; esac
sed -e "s|^Exec=.*|Exec=$exec_path gui|" "$HERE/wardlens.desktop" > "$APPS/wardlens.desktop"
chmod 0644 "$APPS/wardlens.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true
echo "WardLens desktop entry installed in $APPS (runs $HERE/WardLens)"
