#!/usr/bin/env bash
# Every speed table in the README, in one command (about 10 minutes on 2 cores; not part of the
# tests). Needs the package installed with its test extra (onnxruntime, torch), as tests/run.sh does.
#   bash benchmarks/run.sh [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
THREADS=1
if [ "${1:-}" = "--threads" ]; then THREADS=$2; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== binary kernels against the machine's peak xor-popcount throughput"
bash benchmarks/kernels/run.sh
# from a scratch folder, so the installed package (with its C library) is what runs
cd "$work"
echo "== binary layers against the same layers in fp32 (XNNPACK, onnxruntime, PyTorch)"
python3 "$ROOT/benchmarks/layers/run.py" --threads "$THREADS"
echo "== float and int8 layers against XNNPACK called directly; HetConv against dense"
python3 "$ROOT/benchmarks/kernels_float/run.py" --threads "$THREADS"
echo "== whole network: Bi-Real-18 against its float twin"
python3 "$ROOT/benchmarks/networks/run.py" --threads "$THREADS"
# Fashion-MNIST is a Debian package (MNIST comes from ../shared/data)
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  SUDO=""; if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
  $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null
fi
echo "== post-training int8 against float and onnxruntime's static quantization (trains the models once:"
echo "   about 45 minutes the first time, cached in build/int8-bench)"
EDGEBNN_DATA="${EDGEBNN_DATA:-$ROOT/../shared/data}" python3 "$ROOT/benchmarks/int8/run.py"
