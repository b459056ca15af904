#!/usr/bin/env bash
# The README's two commands, on a fresh Debian 12 machine:
#   ./dev.sh example   install the dependencies, build, and run footprint on the seed's HybridNetwork
#   ./dev.sh test      install the dependencies, build, and run the whole test suite
# Also: ./dev.sh setup (dependencies only), ./dev.sh build, ./dev.sh bench.
# `test` also runs each fuzz target for FUZZ_SECONDS (default 10); fuzz/run.sh runs them longer.
# BUILD_DIR (default: build) and JOBS (default: 2) can be set in the environment.
# TORCH=2.15.0 ./dev.sh build|test|example does the same against another supported torch
# (torch-versions.txt), in its own virtual environment and build directory (build-torch-2.15.0).
set -euo pipefail
cd "$(dirname "$0")"
TORCH=${TORCH:-}
BUILD_DIR=${BUILD_DIR:-build${TORCH:+-torch-$TORCH}}
JOBS=${JOBS:-2}

# Debian packages: the toolchain, Python for the virtual environment, and the libraries footprint
# uses instead of writing its own. PyTorch itself comes from PyPI (requirements.txt).
PACKAGES=(build-essential cmake ninja-build pkg-config git python3-venv python3-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libzip-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev  # libFuzzer and the sanitizers, for fuzz/run.sh
  valgrind                  # the installed package at import, run and exit (tools/torch_version_check.sh)
  chromium)                 # headless, to open footprint memory --html in the tests

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

# The pinned PyPI packages (requirements.txt: torch 2.11.0 and torchvision 0.26.0, whose LibTorch
# the C++ builds against) in a virtual environment outside the tree, named after the pins' hash:
# a new clone with the same pins reuses it, a changed pin makes a new one. FOOTPRINT_VENV overrides.
# With TORCH set, requirements.txt's torch and torchvision pins become that line of torch-versions.txt.
requirements() {
  if [ -z "$TORCH" ]; then
    cat requirements.txt
    return
  fi
  local vision
  vision=$(awk -v t="$TORCH" '$1 == t { print $2 }' torch-versions.txt)
  if [ -z "$vision" ]; then
    echo "dev.sh: torch $TORCH is not in torch-versions.txt ($(awk '/^[0-9]/ { printf "%s ", $1 }' torch-versions.txt))" >&2
    exit 2
  fi
  sed -e "s/^torch==.*/torch==$TORCH/" -e "s/^torchvision==.*/torchvision==$vision/" requirements.txt
}
VENV=${FOOTPRINT_VENV:-$HOME/.cache/footprint/venv-$(requirements | sha256sum | cut -c1-12)}
PYTHON=$VENV/bin/python

venv() {
  if [ -f "$VENV/.complete" ]; then
    echo "dev.sh: reusing $VENV"
    return
  fi
  echo "dev.sh: creating $VENV (torch is a CUDA wheel of a few GB: a minute or two)"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  requirements > "$VENV/requirements.txt"
  "$PYTHON" -m pip install -q --disable-pip-version-check -r "$VENV/requirements.txt"
  touch "$VENV/.complete"
}

build() {
  venv
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFOOTPRINT_PYTHON="$PYTHON"
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

case "${1:-}" in
  setup) setup; venv ;;
  build) setup; build ;;
  example)
    setup
    build
    echo
    echo "== The seed's HybridNetwork as a LibTorch C++ module (examples/hybrid_network.cpp)"
    "$BUILD_DIR/examples/hybrid_network"
    echo
    echo "== The same model exported by PyTorch, read from the file (examples/hybrid_network.py)"
    "$PYTHON" examples/hybrid_network.py "$BUILD_DIR/example"
    "$BUILD_DIR/footprint" params "$BUILD_DIR/example/hybrid_network.pt" --dtype fp32,fp16
    echo
    echo "== Its layers, run on the meta device (the seed's torchstat and thop, corrected)"
    "$BUILD_DIR/footprint" summary "$BUILD_DIR/example/hybrid_network.pt" --input 1x1x28x28
    echo
    echo "== Its training step's memory (AdamW, batch 64) on a T4, down to the CUDA allocator"
    "$BUILD_DIR/footprint" memory "$BUILD_DIR/example/hybrid_network.pt" --input 64x1x28x28 \
      --train --optimizer adamw --gpu t4 --modules 3 \
      --html "$BUILD_DIR/example/hybrid_network_memory.html" \
      --snapshot "$BUILD_DIR/example/hybrid_network_memory.pickle"
    echo
    echo "== The picture of that step: open $BUILD_DIR/example/hybrid_network_memory.html in a browser;"
    echo "   $BUILD_DIR/example/hybrid_network_memory.pickle opens at pytorch.org/memory_viz"
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
    FOOTPRINT_PYTHON="$PYTHON" bench/run.sh "$BUILD_DIR"
    ;;
  *)
    echo "usage: ./dev.sh example|test|setup|build|bench" >&2
    exit 2
    ;;
esac
