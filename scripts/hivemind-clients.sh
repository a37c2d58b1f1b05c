#!/usr/bin/env bash
# The real upstream HiveMind clients for the interop tests (tests/hivemind/), each in a venv of
# its own because they conflict: hivemind-bus-client 0.4.4 (bitstring<5, ovos-bus-client<2) and
# the 1.2.x line. Cached in .hivemind-clients/ (git-ignored); a venv is rebuilt only when its
# pins below change. Installed from PyPI by name, unmodified.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=.hivemind-clients
PY="${HIVEMIND_CLIENTS_PYTHON:-python3}"
mkdir -p "$ROOT"

build() {  # build NAME PIN...
  local name=$1
  shift
  local want="$*"
  local dir="$ROOT/$name"
  if [ -f "$dir/.pins" ] && [ "$(cat "$dir/.pins")" = "$want" ] && [ -x "$dir/bin/python" ]; then
    return 0
  fi
  echo "hivemind-clients: building $name ($want)" >&2
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  echo "$want" >"$dir/.pins"
}

build v044 "hivemind-bus-client==0.4.4" "bitstring<5" "ovos-bus-client<2"
# the newest of the 1.2 line (a pre-release, like all of it); it speaks protocol v3 (Noise_XXpsk2,
# with noiseprotocol and argon2-cffi, its own dependencies) when the hub offers it
build v12 "hivemind-bus-client==1.2.12a1"
