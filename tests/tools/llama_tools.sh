#!/usr/bin/env bash
# llama.cpp's own command-line tools (llama-quantize), built from the llama.cpp that llama-cpp-python 0.3.36
# vendors, for tests that need llama.cpp's file loaders (not part of the Python package).
#
#   tests/tools/llama_tools.sh OUT_DIR [PYTHON]     -> OUT_DIR/bin/llama-quantize   (cached: built once)
set -euo pipefail
out=${1:?usage: llama_tools.sh OUT_DIR [PYTHON]}
python=${2:-python3}
[[ -x $out/bin/llama-quantize ]] && exit 0
work=$(mktemp -d)
"$python" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==0.3.36" -d "$work"
tar -xzf "$work"/llama_cpp_python-0.3.36.tar.gz -C "$work"
src=$work/llama_cpp_python-0.3.36/vendor/llama.cpp
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON > /dev/null
cmake --build "$work/build" --target llama-quantize -j "$(nproc)" > /dev/null
mkdir -p "$out/bin"
cp "$work/build/bin/llama-quantize" "$out/bin/"
rm -rf "$work"
