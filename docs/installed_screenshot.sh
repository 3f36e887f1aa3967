#!/usr/bin/env bash
# The installed window in Chinese on its first screen, as a user starts it from the applications menu:
#
#   docs/installed_screenshot.sh DEB [OUT.png]     (default OUT: docs/installed-first-screen-zh.png)
#
# Unpacks the .deb (packaging/build.sh) into a temporary root, starts its aurora-desktop under Xvfb with a
# clean environment and LANG=zh_CN.UTF-8, and grabs the screen with xwd (Debian: xvfb, x11-apps; the real
# ImageMagick converts the dump). Needs no project venv.
set -euo pipefail
deb=$(realpath "$1")
out=$(realpath -m "${2:-$(dirname "$0")/installed-first-screen-zh.png}")
tmp=$(mktemp -d)
trap 'kill %1 2>/dev/null || true; rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"
mkdir -p "$tmp/home"
Xvfb :97 -screen 0 1180x780x24 >/dev/null 2>&1 &
sleep 1
env -i HOME="$tmp/home" PATH=/usr/bin:/bin LANG=zh_CN.UTF-8 DISPLAY=:97 QT_QPA_PLATFORM=xcb \
    "$tmp/root/usr/bin/aurora-desktop" >/dev/null 2>&1 &
sleep 6
xwd -root -display :97 -silent > "$tmp/screen.xwd"
kill %2 2>/dev/null || true
python3 - "$tmp/screen.xwd" "$out" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
(hsize, _, _, depth, w, h, *_a, bpl) = struct.unpack(">13I", data[:52]); ncolors = struct.unpack(">I", data[76:80])[0]
pix = data[hsize + ncolors * 12:]
rows = b"".join(b"\0" + bytes(c for x in range(w) for c in pix[y * bpl + 4 * x: y * bpl + 4 * x + 3][::-1]) for y in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[2], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                               + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
PY
echo "wrote $out"
