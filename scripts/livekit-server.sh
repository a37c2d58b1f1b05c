#!/usr/bin/env bash
# A real LiveKit server (the Go SFU, livekit-server) on 127.0.0.1, for tests and local
# development of cloud calls. No registry here ships it: it is built from source with
# `go install`, once per version, into a cache directory, and reused from there.
#
#   scripts/livekit-server.sh install     build it if needed; print the binary's path (exit
#                                         status 3: Go is missing)
#   scripts/livekit-server.sh config ...  print the YAML `run` would start it with
#   scripts/livekit-server.sh run [--port N] [--udp-port N] [--tcp-port N] [-- SERVER_ARGS...]
#
# `run` keeps the server on loopback: HTTP/websocket (the API, /rtc, /agent) on 127.0.0.1:PORT
# (default 7880), WebRTC media over UDP on 127.0.0.1:UDP (default 7882), candidates
# advertised as 127.0.0.1, no STUN lookups, no TURN, no ICE over TCP (--tcp-port N turns it on,
# but livekit-server binds that port on every interface). Keys: LIVEKIT_API_KEY and
# LIVEKIT_API_SECRET from the environment, else `devkey` and a fresh random secret, which it
# prints (as `export` lines) on stderr. LIVEKIT_LOG_LEVEL (debug, info, warn: the default,
# error) sets its logging; arguments after `--` go to livekit-server itself.
#
# It does not use livekit-server's --dev: that binds to loopback only when no keys are given
# (and then with the well-known "devkey: secret"); otherwise it only turns on debug logging and
# /debug/pprof on the main port. The config below binds to 127.0.0.1 whatever the keys.
set -euo pipefail

# v1.13.6 and later pin livekit's pion forks with go.mod replace directives
# (e.g. github.com/livekit/webrtc-pion/v4), which `go install pkg@version` refuses and the Go
# proxy does not serve; v1.13.5 is the newest release that builds with a plain `go install`.
LIVEKIT_SERVER_VERSION=v1.13.5
MODULE=github.com/livekit/livekit-server
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/hivecall/livekit-server-$LIVEKIT_SERVER_VERSION"
BINARY="$CACHE/bin/livekit-server"

die() {
  echo "livekit-server.sh: $*" >&2
  exit 1
}

install_server() {
  if [ -x "$BINARY" ]; then
    echo "$BINARY"
    return
  fi
  # GO names the go command; else `go` on PATH, else the official tarball's /usr/local/go.
  local go="${GO:-}"
  if [ -z "$go" ]; then
    go="$(command -v go || true)"
    [ -n "$go" ] || go=/usr/local/go/bin/go
  fi
  if ! [ -x "$go" ] && ! command -v "$go" >/dev/null; then
    # Exit status 3 says "no Go" to callers (tests/livekit_real skips on it).
    echo "livekit-server.sh: building livekit-server $LIVEKIT_SERVER_VERSION needs Go 1.21 or" \
      "newer (its go.mod asks for 1.26, which Go 1.21+ fetches by itself): install it from" \
      "https://go.dev/dl/ and put \`go\` on PATH (or name it in GO=)" >&2
    exit 3
  fi
  echo "livekit-server.sh: building livekit-server $LIVEKIT_SERVER_VERSION with $go" \
    "(a few minutes the first time)" >&2
  mkdir -p "$CACHE"
  local tmp
  tmp="$(mktemp -d "$CACHE/build.XXXXXX")"
  # A build of its own (GOFLAGS cleared, so a -mod=vendor or the like from the caller does not
  # apply); the module cache stays the user's.
  if ! GOBIN="$tmp" GOFLAGS= "$go" install "$MODULE/cmd/server@$LIVEKIT_SERVER_VERSION" >&2; then
    rm -rf "$tmp"
    die "go install $MODULE/cmd/server@$LIVEKIT_SERVER_VERSION failed (it needs the Go" \
      "module proxy, or a warm module cache)"
  fi
  mkdir -p "$CACHE/bin"
  mv "$tmp/server" "$BINARY.tmp" && mv "$BINARY.tmp" "$BINARY"
  rm -rf "$tmp"
  echo "$BINARY"
}

PORT=7880
MEDIA_UDP_PORT=7882
ICE_TCP_PORT=0
SERVER_ARGS=()

parse_ports() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) PORT="${2:?--port needs a number}"; shift 2 ;;
      --udp-port) MEDIA_UDP_PORT="${2:?--udp-port needs a number}"; shift 2 ;;
      --tcp-port) ICE_TCP_PORT="${2:?--tcp-port needs a number}"; shift 2 ;;
      --) shift; SERVER_ARGS=("$@"); break ;;
      *) die "unknown option $1 (see the top of $0)" ;;
    esac
  done
  local p
  for p in "$PORT" "$MEDIA_UDP_PORT" "$ICE_TCP_PORT"; do
    [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -le 65535 ] || die "not a port: $p"
  done
}

KEY="${LIVEKIT_API_KEY:-}"
SECRET="${LIVEKIT_API_SECRET:-}"
GENERATED=0

pick_keys() {
  case "$KEY$SECRET" in
    *$'\n'*) die "LIVEKIT_API_KEY or LIVEKIT_API_SECRET holds a line break" ;;
  esac
  if [ -n "$KEY" ] && [ -n "$SECRET" ]; then return; fi
  [ -z "$KEY$SECRET" ] || die "set both LIVEKIT_API_KEY and LIVEKIT_API_SECRET, or neither"
  KEY=devkey
  # livekit-server warns about secrets shorter than 32 characters.
  SECRET="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  GENERATED=1
}

# A YAML double-quoted scalar.
yaml_string() {
  local s="${1//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

# Every key is livekit-server's own (pkg/config/config.go and mediatransportutil's
# rtcconfig.RTCConfig, parsed strictly: an unknown key is an error).
config_yaml() {
  cat <<EOF
port: $PORT
bind_addresses: ["127.0.0.1"]
rtc:
  # Media on one UDP port on 127.0.0.1 (the mux listens on each allowed local IP).
  udp_port: $MEDIA_UDP_PORT
  # 0: no ICE over TCP. livekit-server listens for it on every interface, not only loopback.
  tcp_port: $ICE_TCP_PORT
  # No STUN to learn a public IP; advertise 127.0.0.1 and gather only loopback candidates.
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
  ips:
    includes: ["127.0.0.1/32"]
  use_mdns: false
  # The STUN servers clients are told to use. Left empty, livekit-server hands them Google's
  # and Twilio's; this address has no STUN server, so clients keep to their host candidates.
  stun_servers: ["127.0.0.1:9"]
turn:
  enabled: false
keys:
  $(yaml_string "$KEY"): $(yaml_string "$SECRET")
room:
  auto_create: true
  empty_timeout: 300
  departure_timeout: 20
logging:
  level: ${LIVEKIT_LOG_LEVEL:-warn}
  pion_level: error
EOF
}

announce() {
  echo "livekit-server.sh: LiveKit on ws://127.0.0.1:$PORT" >&2
  if [ "$GENERATED" = 1 ]; then
    echo "export LIVEKIT_URL=ws://127.0.0.1:$PORT LIVEKIT_API_KEY=$KEY" \
      "LIVEKIT_API_SECRET=$SECRET" >&2
  fi
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  install)
    install_server
    ;;
  config)
    parse_ports "$@"
    pick_keys
    config_yaml
    ;;
  run)
    parse_ports "$@"
    pick_keys
    binary="$(install_server)"
    # livekit-server reads these from the environment over the config file: drop them.
    unset LIVEKIT_CONFIG LIVEKIT_KEYS NODE_IP UDP_PORT REDIS_HOST REDIS_PASSWORD LIVEKIT_REGION \
      LIVEKIT_TURN_CERT LIVEKIT_TURN_KEY
    # The config (it holds the secret) is read through an open descriptor of a file already
    # removed, so nothing is left behind and the secret is not on the command line.
    conf="$(mktemp "${TMPDIR:-/tmp}/livekit-server.XXXXXX.yaml")"
    chmod 600 "$conf"
    config_yaml >"$conf"
    exec 3<"$conf"
    rm -f "$conf"
    announce
    exec "$binary" --config /dev/fd/3 "${SERVER_ARGS[@]}"
    ;;
  *)
    echo "usage: $0 install | config [--port N] [--udp-port N] [--tcp-port N]" \
      "| run [--port N] [--udp-port N] [--tcp-port N] [-- SERVER_ARGS...]" >&2
    exit 2
    ;;
esac
