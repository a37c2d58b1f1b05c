#!/usr/bin/env bash
# Make (or update) bench/.venv-persona: ovos-persona-server for the compat benchmark, kept out of
# hivecall's own venv. Usage: bench/compat_persona_venv.sh [fast|plain]
#   fast:  also install uvloop and httptools (uvicorn then uses them, as it does for hivecall
#          when they are in hivecall's venv); plain: make sure they are not there.
# The benchmark calls this itself so both servers run on the same uvicorn stack.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv-persona"
python=${PYTHON:-python3}
stack=${1:-plain}
pins=("ovos-persona-server==0.18.11a1" "ovos-solver-failure-plugin==0.0.3")

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
if ! "$venv/bin/python" -c 'import ovos_persona_server, ovos_solver_failure_plugin' 2>/dev/null; then
  echo "installing ${pins[*]} into $venv" >&2
  "${pip[@]}" install "${pins[@]}"
fi
case "$stack" in
  fast)
    if ! "$venv/bin/python" -c 'import uvloop, httptools' 2>/dev/null; then
      "${pip[@]}" install uvloop httptools
    fi ;;
  plain)
    if "$venv/bin/python" -c 'import uvloop' 2>/dev/null || "$venv/bin/python" -c 'import httptools' 2>/dev/null; then
      "${pip[@]}" uninstall --yes uvloop httptools >/dev/null
    fi ;;
  *) echo "usage: $0 [fast|plain]" >&2; exit 2 ;;
esac
