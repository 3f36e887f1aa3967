#!/usr/bin/env bash
# Portable CPU builds of llama-cpp-python's native libraries (GGML_NATIVE=OFF): one lib/ folder per variant.
#
#   packaging/cpu_variants.sh OUT_DIR [PYTHON]
#
# OUT_DIR/<variant>/lib/ holds libllama, libggml*, libmtmd for:
#   x86-64   baseline x86-64 (SSE2 only): any 64-bit x86 CPU
#   avx2     AVX, AVX2, FMA, F16C (Intel Haswell 2013+, AMD Zen/Excavator+)
# A variant already built (its .done marker) is kept: each build takes ~10 minutes on 2 cores.
# llama-cpp-python 0.3.36 cannot load GGML_BACKEND_DL CPU variants itself (its #2069), so the launcher
# chooses a lib/ folder before llama_cpp is imported (LLAMA_CPP_LIB_PATH).
set -euo pipefail
out=${1:?usage: cpu_variants.sh OUT_DIR [PYTHON]}
python=${2:-python3}
source "$(dirname "$0")/llama_cpu_flags.sh"
version=$LLAMA_CPP_PYTHON_VERSION
common=$LLAMA_COMMON_FLAGS
mkdir -p "$out"
for variant in x86-64 avx2; do
    dest="$out/$variant"
    if [[ -f "$dest/.done" ]]; then
        echo "== $variant: already built ($dest)"
        continue
    fi
    echo "== building llama-cpp-python $version for $variant (about 10 minutes)"
    work=$(mktemp -d)
    CMAKE_ARGS="$common ${LLAMA_VARIANT_FLAGS[$variant]}" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
        "$python" -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
        "llama-cpp-python==$version" -w "$work"
    rm -rf "$dest" && mkdir -p "$dest"
    "$python" -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [z.extract(n, sys.argv[2]) for n in z.namelist() if n.startswith('llama_cpp/lib/')]" \
        "$work"/llama_cpp_python-*.whl "$work/x"
    mv "$work/x/llama_cpp/lib" "$dest/lib"
    echo "$common ${LLAMA_VARIANT_FLAGS[$variant]}" > "$dest/cmake-flags.txt"
    touch "$dest/.done"
    rm -rf "$work"
    echo "== $variant: $(du -sh "$dest" | cut -f1) in $dest"
done
