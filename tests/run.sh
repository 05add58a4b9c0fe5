#!/usr/bin/env bash
# Installs what the tests need (apt-get and pip), builds, and runs every suite:
#   1. C tests under AddressSanitizer + UBSan (ctest)
#   2. the C tests cross-built for aarch64 and armv7 (32-bit), run under qemu-user
#   3. the libFuzzer harness on the model loader, for a bounded time (EDGEBNN_FUZZ_SECONDS, default 60)
#   4. the LCE interop tests against LCE's interpreter and the TFLite import against tflite-runtime, in a NumPy-1 venv
#   5. the Python tests (pytest) against the installed package; test_profile_remote.py starts its own
#      sshd on 127.0.0.1 (openssh-server) and runs the aarch64 edgebnn-bench under qemu-aarch64
# The README's second command and .ci/run both call this script.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
APT_PACKAGES=(cmake ninja-build gcc clang python3-pip gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user
  libpthreadpool-dev libxnnpack-dev libcpuinfo-dev openssh-server openssh-client)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

echo "== pip install (torch pinned to the CPU build first, then the package with its test extra)"
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q "$ROOT[test,train]"

echo "== C tests (ASan + UBSan)"
cmake -S . -B build/ctest -G Ninja -DEDGEBNN_BUILD_TESTS=ON -DEDGEBNN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/ctest
ctest --test-dir build/ctest --output-on-failure

# Release builds keep this short; the toolchain files make ctest run each test under qemu.
for target in aarch64-linux-gnu arm-linux-gnueabihf; do
  echo "== C tests, $target under qemu"
  cmake -S . -B "build/$target" -G Ninja -DEDGEBNN_BUILD_TESTS=ON \
    -DCMAKE_TOOLCHAIN_FILE="$ROOT/runtime/cmake/$target.cmake" >/dev/null
  cmake --build "build/$target"
  ctest --test-dir "build/$target" --output-on-failure
done

echo "== fuzzing the model loader for ${EDGEBNN_FUZZ_SECONDS:-60} s"
cmake -S . -B build/fuzz -G Ninja -DEDGEBNN_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/fuzz --target fuzz_loader
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/*.ebnn "$work/"
(cd "$work" && "$ROOT/build/fuzz/runtime/fuzz_loader" "$work" -max_total_time="${EDGEBNN_FUZZ_SECONDS:-60}" \
   -max_len=8192 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 | tail -n 4)

echo "== LCE interop against LCE's own interpreter (larq-compute-engine 0.16 needs NumPy 1: its own venv)"
python3 -m venv build/lce-venv
build/lce-venv/bin/pip install -q "numpy<2" "larq-compute-engine==0.16.0" "tflite-runtime==2.14.0" pillow pytest click psutil
build/lce-venv/bin/pip install -q --no-deps -C cmake.define.EDGEBNN_CROSS_BENCH=OFF -C build-dir=build/lce-wheel "$ROOT"
# tflite-runtime 2.14 (the TFLite peer the interop issue names) also needs NumPy 1: the TFLite models
# are compared with its default and reference kernels here
(cd "$work" && EDGEBNN_REQUIRE_LCE=1 "$ROOT/build/lce-venv/bin/python" -m pytest "$ROOT/tests/python/test_lce.py" \
   "$ROOT/tests/python/test_convert_tflite.py" -q -p no:cacheprovider --rootdir "$ROOT")

echo "== Python tests"
# run from outside the checkout so the installed package (with its C library) is what gets imported
cd "$work" && python3 -m pytest "$ROOT/tests/python" -q -p no:cacheprovider --rootdir "$ROOT"
