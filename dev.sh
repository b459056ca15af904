#!/usr/bin/env bash
# The README's two commands, on a fresh Debian 12 machine:
#   ./dev.sh example   install the dependencies, build, and run footprint on the seed's HybridNetwork
#   ./dev.sh test      install the dependencies, build, and run the whole test suite
# Also: ./dev.sh setup (dependencies only), ./dev.sh build, ./dev.sh bench.
# `test` also runs each fuzz target for FUZZ_SECONDS (default 10); fuzz/run.sh runs them longer.
# BUILD_DIR (default: build) and JOBS (default: 2) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")"
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}

# Debian packages: the toolchain, LibTorch and PyTorch (the tests compare against real runs),
# and the libraries footprint uses instead of writing its own.
PACKAGES=(build-essential cmake ninja-build pkg-config git
  libtorch-dev python3-torch python3-torchvision
  libcli11-dev nlohmann-json3-dev libfmt-dev libzip-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev)  # libFuzzer and the sanitizers, for fuzz/run.sh

setup() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "dev.sh: all ${#PACKAGES[@]} Debian packages are installed"
    return
  fi
  echo "dev.sh: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

case "${1:-}" in
  setup) setup ;;
  build) setup; build ;;
  example)
    setup
    build
    echo
    echo "== The seed's HybridNetwork as a LibTorch C++ module (examples/hybrid_network.cpp)"
    "$BUILD_DIR/examples/hybrid_network"
    echo
    echo "== The same model exported by PyTorch, read from the file (examples/hybrid_network.py)"
    /usr/bin/python3 examples/hybrid_network.py "$BUILD_DIR/example"
    "$BUILD_DIR/footprint" params "$BUILD_DIR/example/hybrid_network.pt" --dtype fp32,fp16
    echo
    echo "== Its layers, run on the meta device (the seed's torchstat and thop, corrected)"
    "$BUILD_DIR/footprint" summary "$BUILD_DIR/example/hybrid_network.pt" --input 1x1x28x28
    echo
    echo "== Its training step's memory (AdamW, batch 64) on a T4, down to the CUDA allocator"
    "$BUILD_DIR/footprint" memory "$BUILD_DIR/example/hybrid_network.pt" --input 64x1x28x28 \
      --train --optimizer adamw --gpu t4 --modules 3
    ;;
  test)
    setup
    build
    # Each fuzz target briefly (FUZZ_SECONDS, default 10) from the tests' seeds; the long runs
    # are fuzz/run.sh's job. Then the test suite, whose summary is the last thing printed.
    fuzz/run.sh "${FUZZ_SECONDS:-10}" "$BUILD_DIR-fuzz"
    (cd "$BUILD_DIR" && ctest --output-on-failure -j "$JOBS")
    ;;
  bench)
    setup
    build
    bench/run.sh "$BUILD_DIR"
    ;;
  *)
    echo "usage: ./dev.sh example|test|setup|build|bench" >&2
    exit 2
    ;;
esac
