#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server on 127.0.0.1 and HIVECALL_TEST_PG_URL set.
# A server given by HIVECALL_TEST_PG_URL is used as it is.
set -euo pipefail
if [ -n "${HIVECALL_TEST_PG_URL:-}" ]; then exec "$@"; fi
bindir=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")
dir=$(mktemp -d /tmp/hivecall-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync >/dev/null
"${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
  "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off" start >/dev/null
stop() { "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap stop EXIT
export HIVECALL_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
export HIVECALL_TEST_REQUIRE_PG=1
"$@"
