#!/usr/bin/env bash
# Make (or update) bench/.venv-hivemind: upstream's hivemind-core 4.0.0 and the benchmark's
# trivial in-process agent (bench/hivemind_agent/: an instant answer, as hivecall's echo agent
# gives), for the hivemind benchmark's side-by-side run; kept out of hivecall's own venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv-hivemind"
python=${PYTHON:-python3}
pins=("hivemind-core==4.0.0" "bitstring<5")  # its bus client needs bitstring 4 (5 lacks BitStream)

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "${pins[*]}" ]; then
  echo "installing ${pins[*]} into $venv" >&2
  "$venv/bin/python" -m pip --disable-pip-version-check --quiet install "${pins[@]}"
  echo "${pins[*]}" >"$venv/.pins"
fi
# The benchmark's trivial agent (bench/hivemind_agent/), reinstalled when it changes.
agent=("$here/hivemind_agent/pyproject.toml" "$here/hivemind_agent/hivecall_bench_agent.py")
stamp=$(cat "${agent[@]}" | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.agent" 2>/dev/null)" != "$stamp" ]; then
  build=$(mktemp -d)  # built from a copy: no build/ or egg-info left in the source tree
  trap 'rm -rf "$build"' EXIT
  cp "${agent[@]}" "$build/"
  "$venv/bin/python" -m pip --disable-pip-version-check --quiet install --force-reinstall \
    --no-deps "$build"
  echo "$stamp" >"$venv/.agent"
fi
