#!/usr/bin/env bash
# Run a command inside a loopback-only network namespace, with HIVECALL_TEST_NETNS=1 set.
# WebRTC tests need it: Chromium offers candidates on every interface, the stand-ins listen on
# 127.0.0.1 only. It takes root (unshare -n) and iproute2 (ip); without them, or when already
# inside one, the command runs as it is (HIVECALL_TEST_NETNS left as it was).
set -euo pipefail
if [ "${HIVECALL_TEST_NETNS:-}" = 1 ]; then exec "$@"; fi
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null \
  && unshare -n -- ip link set lo up 2>/dev/null; then
  exec unshare -n -- env HIVECALL_TEST_NETNS=1 sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
echo "with-netns: no loopback-only network namespace (needs root, unshare and ip);" \
  "running without one" >&2
exec "$@"
