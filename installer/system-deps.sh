#!/usr/bin/env bash
# Qt's runtime libraries on Debian/Ubuntu, plus the tools the tests use (Xvfb, pdftoppm/pdftotext).
set -euo pipefail
PKGS=(libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
      libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0
      libglib2.0-0 libdbus-1-3 libfontconfig1 fontconfig fonts-dejavu-core fonts-droid-fallback xvfb xauth poppler-utils)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
exec bash "$(dirname "$0")/apt-install.sh" "WardLens needs these system packages" "${missing[@]}"
