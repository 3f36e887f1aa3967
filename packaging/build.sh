#!/usr/bin/env bash
# Build the Linux installers from a clean checkout:
#
#   packaging/build.sh [OUT]     (default OUT: dist/)
#
#   OUT/aurora-desktop_VERSION_amd64.deb                .deb: /opt/aurora-desktop, /usr/bin launchers,
#                                                        desktop entry, icon; depends on a CJK font package
#   OUT/aurora-desktop-VERSION-linux-x86_64.tar.gz      portable: unpack anywhere, run ./aurora-desktop
#
# A PyInstaller onedir bundle of aurora-desktop, aurora-chat and aurora-serve (one executable; the others links to it)
# with the desktop extra only: no torch, transformers, bitsandbytes, training or export code. llama.cpp is
# carried in portable CPU builds (packaging/cpu_variants.sh: x86-64 baseline and AVX2/FMA, cached in
# $AURORA_CPU_VARIANTS, default ~/.cache/aurora/cpu-variants); the launcher picks the one the CPU runs.
# Needs: python3 (3.10+) with venv, a C/C++ compiler and CMake (first variant build), dpkg-deb.
# AppImage: not built (appimagetool is downloaded from GitHub, which this build cannot reach).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-dist}")
work=build/installer
python=${PYTHON:-python3}
version=$(sed -n 's/^__version__ = "\([^"]*\)".*/\1/p' core/__init__.py)  # the one place it is written
variants=${AURORA_CPU_VARIANTS:-$HOME/.cache/aurora/cpu-variants}
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== build environment ($work/venv): the desktop extra and PyInstaller"
[[ -x $work/venv/bin/python ]] || "$python" -m venv "$work/venv"
py=$work/venv/bin/python
"$py" -m pip install -q ".[desktop]" "pyinstaller>=6.10"
for ts in aurora_desktop/ui/translations/*.ts; do
    "$work/venv/bin/pyside6-lrelease" -silent "$ts" -qm "${ts%.ts}.qm"
done
"$py" -m pip install -q --no-deps --force-reinstall .   # now with the compiled translations

echo "== portable llama.cpp builds ($variants)"
packaging/cpu_variants.sh "$variants" "$py"

echo "== PyInstaller"
rm -rf "$work/dist"
"$work/venv/bin/pyinstaller" -y --log-level WARN packaging/aurora-desktop.spec \
    --distpath "$work/dist" --workpath "$work/pyi"
bundle=$work/dist/aurora-desktop
ln -sf aurora-desktop "$bundle/aurora-chat"
ln -sf aurora-desktop "$bundle/aurora-serve"
ln -sf aurora-desktop "$bundle/aurora-kb"
# the CPU variants, links kept and symbols stripped; Qt's own translations only for the languages we ship
for variant in "$variants"/*/; do
    name=$(basename "$variant")
    mkdir -p "$bundle/_internal/cpu-variants/$name"
    cp -a "$variant/lib" "$bundle/_internal/cpu-variants/$name/"
    (   # a wheel stores libfoo.so, libfoo.so.0 and libfoo.so.0.25.3 as three copies: keep one, link the others
        cd "$bundle/_internal/cpu-variants/$name/lib"
        for real in *.so.*.*.*; do
            for link in "${real%.*.*}" "${real%%.so.*}.so"; do
                if [[ -f $link && ! -L $link ]] && cmp -s "$real" "$link"; then ln -sf "$real" "$link"; fi
            done
        done
        find . -type f -name '*.so*' -exec strip --strip-unneeded {} +
    )
done
find "$bundle/_internal/PySide6/Qt/translations" -type f ! -name '*zh_CN*' ! -name '*_en.qm' -delete
# the Python the bundle carries, without its debug symbols (a source-built Python keeps them: libpython 23 -> 6 MB,
# its extension modules 12 -> 5 MB). Not the wheels' libraries: auditwheel patched those, and stripping a patched
# library breaks it ("ELF load command address/offset not page-aligned", numpy's OpenBLAS, measured)
find "$bundle/_internal" -maxdepth 1 -type f -name 'libpython3*.so*' -exec strip --strip-unneeded {} +
find "$bundle/_internal" -maxdepth 3 -path '*/python3.*/*' -type f -name '*.so' -exec strip --strip-unneeded {} + \
    2>/dev/null || true
heavy=$(find "$bundle" -maxdepth 3 \( -iname 'torch*' -o -iname 'transformers*' -o -iname 'bitsandbytes*' \
        -o -iname 'aurora_training*' -o -iname 'aurora_export*' \) | head -3)
if [[ -n $heavy ]]; then
    echo "build.sh: the bundle holds training-side packages: $heavy" >&2
    exit 1
fi
echo "bundle: $(du -sm "$bundle" | cut -f1) MB unpacked"

mkdir -p "$out"
echo "== portable tarball"
stage=$work/tar/aurora-desktop-$version
rm -rf "$work/tar" && mkdir -p "$stage"
cp -a "$bundle"/. "$stage"/
cp packaging/linux/INSTALL.txt packaging/linux/aurora-desktop.desktop packaging/linux/aurora-desktop.png "$stage"/
tar -C "$work/tar" -czf "$out/aurora-desktop-$version-linux-x86_64.tar.gz" "aurora-desktop-$version"

echo "== .deb"
root=$work/deb
rm -rf "$root"
mkdir -p "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/usr/share/applications" \
    "$root/usr/share/icons/hicolor/256x256/apps" "$root/usr/share/doc/aurora-desktop"
cp -a "$bundle" "$root/opt/aurora-desktop"
ln -s ../../opt/aurora-desktop/aurora-desktop "$root/usr/bin/aurora-desktop"
ln -s ../../opt/aurora-desktop/aurora-desktop "$root/usr/bin/aurora-chat"
ln -s ../../opt/aurora-desktop/aurora-desktop "$root/usr/bin/aurora-serve"
ln -s ../../opt/aurora-desktop/aurora-desktop "$root/usr/bin/aurora-kb"
cp packaging/linux/aurora-desktop.desktop "$root/usr/share/applications/"
cp packaging/linux/aurora-desktop.png "$root/usr/share/icons/hicolor/256x256/apps/"
cp packaging/linux/INSTALL.txt "$root/usr/share/doc/aurora-desktop/README"
cat > "$root/DEBIAN/control" <<CONTROL
Package: aurora-desktop
Version: $version
Section: utils
Priority: optional
Architecture: amd64
Depends: fonts-noto-cjk | fonts-wqy-microhei, libxcb-cursor0, libxkbcommon-x11-0, libegl1, libgl1, libfontconfig1, libdbus-1-3, libglib2.0-0
Recommends: fcitx5-frontend-qt6 | ibus
Installed-Size: $(du -sk "$root" | cut -f1)
Maintainer: Aurora Desktop developers <aurora-desktop@users.noreply.github.com>
Homepage: https://github.com/aurora-desktop/aurora-desktop
Description: Offline Chinese chat with a GGUF language model
 Aurora Desktop runs a Mixtral GGUF (such as the Aurora QLoRA model) on your own
 computer through llama.cpp: multi-turn chat, search, export, no network. It picks
 the llama.cpp build your CPU runs (x86-64 baseline or AVX2/FMA).
CONTROL
dpkg-deb --root-owner-group -Zgzip --build "$root" "$out/aurora-desktop_${version}_amd64.deb" > /dev/null
ls -l "$out"
