#!/usr/bin/env bash
# System packages the tests need: PostgreSQL (the store's second backend), git (agent context),
# Chromium (browser tests, driven by pip playwright; never `playwright install`) and iproute2
# (`ip`, for the loopback-only network namespace of scripts/with-netns.sh), npm (the LiveKit
# browser client, scripts/build-web.sh) and certutil (libnss3-tools).
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v git >/dev/null || need+=(git)
[ -x /usr/bin/chromium ] || need+=(chromium fonts-liberation)
command -v ip >/dev/null || need+=(iproute2)
command -v npm >/dev/null || need+=(nodejs npm)
# certutil: the HTTPS phone test makes Chromium trust the hub's CA through an NSS database.
command -v certutil >/dev/null || need+=(libnss3-tools)
# The real upstream HiveMind clients for the interop tests, each in a cached venv of its own.
bash "$(dirname "$0")/hivemind-clients.sh"
# The real LiveKit server for tests/livekit_real, built once with Go and cached (no Go: exit 3,
# and those tests skip, or fail under HIVECALL_TEST_REQUIRE_BROWSER=1).
bash "$(dirname "$0")/livekit-server.sh" install >/dev/null || [ $? -eq 3 ]
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "tests need: ${need[*]} (install them with apt-get as root)" >&2
  exit 1
fi
echo "installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
