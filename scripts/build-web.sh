#!/usr/bin/env bash
# Vendor the browser's LiveKit client into the package (cloud calls; no CDN at run time).
#
# `npm ci` in web/ installs exactly what web/package-lock.json pins (integrity-checked, no
# install scripts), then the prebuilt UMD bundle and its licence are copied into
# src/hivecall/web/static/vendor/: a build output, git-ignored, shipped as package data.
# cloud.js loads /static/vendor/livekit-client.umd.js only when a cloud call starts.
#
# Fast when nothing changed: a stamp holds the lock file's hash. --force rebuilds anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
WEB=web
VENDOR=src/hivecall/web/static/vendor
STAMP=$VENDOR/.lock-sha256
BUNDLE=livekit-client.umd.js

lock_hash=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
if [ "${1:-}" != "--force" ] && [ -f "$VENDOR/$BUNDLE" ] && [ -f "$STAMP" ] \
  && [ "$(cat "$STAMP")" = "$lock_hash" ]; then
  exit 0
fi

if ! command -v npm >/dev/null; then
  echo "build-web: npm is missing (Node.js 20+: apt-get install nodejs npm)" >&2
  exit 1
fi

started=$(date +%s%N)
(cd "$WEB" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
pkg=$WEB/node_modules/livekit-client
version=$(node -p "require('./$pkg/package.json').version")
pinned=$(node -p "require('./$WEB/package.json').dependencies['livekit-client']")
if [ "$version" != "$pinned" ]; then
  echo "build-web: npm installed livekit-client $version, package.json pins $pinned" >&2
  exit 1
fi

mkdir -p "$VENDOR"
tmp=$(mktemp -d "$VENDOR/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$pkg/dist/$BUNDLE" "$tmp/$BUNDLE"
cp "$pkg/LICENSE" "$tmp/livekit-client.LICENSE"
printf '{"livekit-client": "%s"}\n' "$version" >"$tmp/versions.json"
mv -f "$tmp/$BUNDLE" "$tmp/livekit-client.LICENSE" "$tmp/versions.json" "$VENDOR/"
echo "$lock_hash" >"$STAMP"
size=$(stat -c %s "$VENDOR/$BUNDLE")
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
echo "build-web: livekit-client $version -> $VENDOR/$BUNDLE ($size bytes, ${elapsed_ms} ms)"
