#!/usr/bin/env bash
# Build the packaged WardLens (PyInstaller one-folder) into dist/WardLens/ and a tarball
# dist/WardLens-<version>-linux-x86_64.tar.xz. Idempotent: re-running rebuilds in place.
#
#   installer/build.sh              build (creates .venv-build first when it is missing or stale)
#   installer/build.sh --if-needed  do nothing when dist/WardLens is newer than every shipped source
#   installer/build.sh --clean      also drop PyInstaller's cache (build/pyinstaller) first
#
# The build environment .venv-build holds the runtime dependencies of pyproject.toml plus pyinstaller,
# and never torch (the dev .venv has torch for training; a bundle built from it grows to 1.1 GB).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv-build"
STAMP="$VENV/.installed"
DIST="$ROOT/dist"
APPDIR="$DIST/WardLens"
IF_NEEDED=0
CLEAN=()
for a in "$@"; do
  case "$a" in
    --if-needed) IF_NEEDED=1 ;;
    --clean) CLEAN=(--clean) ;;
    *) echo "usage: $0 [--if-needed] [--clean]" >&2; exit 2 ;;
  esac
done

VERSION="$("$PYTHON" -c 'import tomllib,sys; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
TARBALL="$DIST/WardLens-$VERSION-linux-x86_64.tar.xz"

# Everything that ends up in the bundle; the build is stale when any of it is newer than the executable.
SOURCES=(main.py models services viewmodels ui resources installer/wardlens.spec installer/build.sh
         installer/wardlens.desktop installer/install-desktop-entry.sh installer/render_icon.py pyproject.toml)
if [ "$IF_NEEDED" = 1 ] && [ -x "$APPDIR/WardLens" ] && [ -f "$TARBALL" ]; then
  newer="$(find "${SOURCES[@]}" -newer "$APPDIR/WardLens" -not -path '*/__pycache__*' -print -quit 2>/dev/null || true)"
  if [ -z "$newer" ]; then
    echo "build.sh: $APPDIR is up to date (use installer/build.sh to force a rebuild)"
    exit 0
  fi
  echo "build.sh: rebuilding, $newer changed"
fi

t0=$(date +%s)
# 1. Build environment (runtime dependencies + pyinstaller, no torch)
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "build.sh: preparing $VENV (runtime dependencies + pyinstaller)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  mkdir -p "$ROOT/build"
  log="$ROOT/build/venv-build.log"
  { "$VENV/bin/python" -m pip install -q --upgrade pip && "$VENV/bin/python" -m pip install -q -e ".[package]"; } \
    > "$log" 2>&1 || { cat "$log" >&2; echo "build.sh: pip install failed (log: $log)" >&2; exit 1; }
  touch "$STAMP"
fi
if "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("torch") else 1)'; then
  echo "build.sh: torch is installed in $VENV; it must not be (remove $VENV and re-run)" >&2
  exit 1
fi
t1=$(date +%s)

# 2. PyInstaller one-folder build
echo "build.sh: PyInstaller (load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'), $(nproc 2>/dev/null || echo '?') cores)"
"$VENV/bin/python" -m PyInstaller --noconfirm "${CLEAN[@]}" --log-level WARN \
  --distpath "$DIST" --workpath "$ROOT/build/pyinstaller" installer/wardlens.spec
t2=$(date +%s)

# 3. Desktop integration beside the executable
install -m 0644 installer/wardlens.desktop "$APPDIR/wardlens.desktop"
install -m 0644 resources/icons/wardlens.svg "$APPDIR/wardlens.svg"
install -m 0755 installer/install-desktop-entry.sh "$APPDIR/install-desktop-entry.sh"
QT_QPA_PLATFORM=offscreen "$VENV/bin/python" installer/render_icon.py resources/icons/wardlens.svg "$APPDIR/wardlens.png" 256
{
  echo "WardLens $VERSION (linux-x86_64), built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD 2>/dev/null || echo 'unknown')$(git diff --quiet HEAD 2>/dev/null || echo '+local changes')"
  echo
  echo "Run:      ./WardLens            (the GUI; first start builds a demo store in ~/.local/share/WardLens)"
  echo "          ./WardLens --help     (command line: demo, init, import, backup, restore, verify, config, score, xray)"
  echo "Menu:     ./install-desktop-entry.sh   (or sudo ./install-desktop-entry.sh --system)"
  echo "Needs:    libgl1 libegl1 libfontconfig1 libxcb1 libx11-xcb1 (see installer/README.md in the source)"
  echo
  echo "Demo data: 3,000 encounters of the UCI 'Diabetes 130-US hospitals for years 1999-2008' data set"
  echo "(Strack et al. 2014, BioMed Res Int, doi:10.1155/2014/781670), CC BY 4.0."
} > "$APPDIR/README.txt"

# 4. Tarball (sorted, root-owned; xz on every core: 117 MB against gzip's 158 MB, the download stays under 130 MB)
rm -f "$TARBALL" "$DIST"/WardLens-*-linux-x86_64.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner -C "$DIST" -cf - WardLens | xz -T0 -6 > "$TARBALL.part"
mv "$TARBALL.part" "$TARBALL"
t3=$(date +%s)

# Sizes: bytes of the files (du -sb) in MB (10^6) and MiB (2^20); du -sh counts whole disk blocks and says a little more.
bytes_dir="$(du -sb "$APPDIR" | cut -f1)"
bytes_tar="$(du -sb "$TARBALL" | cut -f1)"
echo "build.sh: $APPDIR $((bytes_dir / 1000000)) MB = $((bytes_dir / 1048576)) MiB (du -sh: $(du -sh "$APPDIR" | cut -f1)), $TARBALL $((bytes_tar / 1000000)) MB"
echo "build.sh: times: venv $((t1 - t0)) s, pyinstaller $((t2 - t1)) s, desktop files + tarball $((t3 - t2)) s, total $((t3 - t0)) s"
MAX_MB="${WARDLENS_PACKAGE_MAX_MB:-420}"   # installed folder, local retraining and the server store's driver kept
if [ "$bytes_dir" -ge "$((MAX_MB * 1000000))" ]; then
  echo "build.sh: WARNING: the bundle is $((bytes_dir / 1000000)) MB, over the ${MAX_MB} MB target (see installer/README.md)" >&2
fi
