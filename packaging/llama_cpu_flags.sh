# llama-cpp-python's version and the CMake flags of each portable llama.cpp CPU build (GGML_NATIVE=OFF), in one
# place: sourced by packaging/cpu_variants.sh (the installers' variants) and by ./run (set-up on AMX CPUs).
LLAMA_CPP_PYTHON_VERSION=0.3.36
LLAMA_COMMON_FLAGS="-DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF -DLLAMA_CURL=OFF"
declare -A LLAMA_VARIANT_FLAGS=(
    [x86-64]="-DGGML_SSE42=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_AVX512=OFF -DGGML_BMI2=OFF"
    [avx2]="-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_BMI2=ON"
)
