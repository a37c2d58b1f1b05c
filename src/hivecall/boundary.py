"""The browser boundary: the names a listener answers to, and what browser pages may ask of it.

Browsers keep other sites' pages from reading the hub's answers, not from sending it requests,
and SameSite cookies do not tell the ports of 127.0.0.1 or localhost apart (they are one site).
So both listeners (the main app and the compat listener) run `Boundary`, which refuses:

- a Host the hub does not answer to (421 `host_not_allowed`): a DNS-rebinding page reaches the
  hub under the attacker's name, which is never on the list (`allowed_hosts`);
- on hivecall's own routes, an Origin other than the hub's own (403 `cross_site_request`), and
  an unsafe request authenticated by the session cookie that carries neither an Origin nor
  `Sec-Fetch-Site: same-origin`. A bearer header is no browser's ambient credential (a page of
  another origin cannot send one without a CORS preflight, which the hub never grants), so
  bearer requests need neither;
- on the compat API (OpenAI's and Ollama's paths), any Origin not in `compat_allowed_origins`
  (the ones listed get CORS answers).

WebSocket handshakes follow the same rules (closed before accept, which is HTTP 403). It also
puts the security headers (a CSP without inline script, frame-ancestors 'none', nosniff, …) on
every response. `read_json` (http_api.py) adds the last part: JSON bodies must say they are.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hivecall.auth import SESSION_COOKIE
from hivecall.errors import ConfigError
from hivecall.settings import Settings

log = logging.getLogger(__name__)

# The owner token may do everything; shorter ones are guessable enough to refuse.
OWNER_TOKEN_MIN = 32
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
# What a browser may send the compat API once its page's origin is allowed.
CORS_HEADERS = "authorization, content-type, x-hivecall-session-id, x-openwebui-chat-id"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")

# (path, status, code, message) -> the refusal in the shape the path's clients read.
Render = Callable[[str, int, str, str], Response]
Refusal = tuple[int, str, str]


def check(settings: Settings) -> None:
    """Refuse boundary settings that cannot work (before anything starts)."""
    if settings.owner_token and len(settings.owner_token) < OWNER_TOKEN_MIN:
        raise ConfigError(
            f"owner_token (HIVECALL_OWNER_TOKEN) must be at least {OWNER_TOKEN_MIN} characters: "
            "leave it unset to have one generated, or use a long random one"
        )
    for name in _split(settings.allowed_hosts):
        if name != "*" and not _is_host(hostname_of(name)):
            raise ConfigError(f"allowed_hosts: {name!r} is not a host name or address")
    for origin in _split(settings.compat_allowed_origins):
        if not _is_origin(origin):
            raise ConfigError(
                f"compat_allowed_origins: {origin!r} is not an origin (https://host[:port])"
            )
    for proxy in _split(settings.trusted_proxies):
        if proxy != "*":
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as e:
                raise ConfigError(f"trusted_proxies: {proxy!r} is not an address or network") from e


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy options: X-Forwarded-* believed only from `trusted_proxies` (uvicorn's
    own default believes any loopback peer, which lets local pages pick their address)."""
    trusted = ",".join(_split(settings.trusted_proxies))
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or None}


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """The names a listener answers to, besides loopback ones and the address a request came in
    on: the hosts of public_url and worker_hub_url, this machine's name (and NAME.local), the
    listening addresses and `allowed_hosts`."""
    names = {hostname_of(n) for n in _split(settings.allowed_hosts)}
    for url in (settings.resolved_public_url, settings.worker_hub_url):
        names.add(hostname_of(urlsplit(url).netloc))
    machine = socket.gethostname().lower().rstrip(".")
    if machine:
        names |= {machine, f"{machine.split('.')[0]}.local"}
    for host in (settings.host, settings.compat_host):
        if host not in WILDCARD_HOSTS:
            names.add(hostname_of(host))
    return frozenset(n for n in names if n)


def content_security_policy(settings: Settings) -> str:
    """What the dashboard, the phone app and the join page load: their own files only (no
    inline script or style), WebRTC media, and connections to the hub, to OpenAI Realtime (the
    browser posts its SDP offer to openai_base_url) and to the LiveKit server."""
    connect = ["'self'", *_sources(settings.openai_base_url), *_livekit(settings.livekit_url)]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob: mediastream:",
            "connect-src " + " ".join(dict.fromkeys(connect)),
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def page_headers(settings: Settings) -> dict[str, str]:
    """The security headers of every response of the main app."""
    return {
        "content-security-policy": content_security_policy(settings),
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        # same-origin, not no-referrer: with no-referrer a same-origin form post says Origin: null.
        "referrer-policy": "same-origin",
    }


API_HEADERS = {"x-content-type-options": "nosniff"}


@dataclass(frozen=True)
class Rules:
    """The boundary of one listener."""

    hosts: frozenset[str]  # lower case, no port; "*" answers to any name
    own_origins: frozenset[str]  # origins that are the hub's besides a request's own (public_url)
    compat_origins: frozenset[str]  # pages that may use the compat API
    is_compat: Callable[[str], bool]  # the compat API's paths
    headers: dict[str, str]  # added to every response
    render: Render
    _answered: set[str] = field(default_factory=set, compare=False, repr=False)  # Host values

    @classmethod
    def of(
        cls,
        settings: Settings,
        *,
        is_compat: Callable[[str], bool],
        headers: dict[str, str],
        render: Render,
    ) -> Rules:
        public = origin_of(settings.resolved_public_url)
        return cls(
            hosts=allowed_hosts(settings),
            own_origins=frozenset({public} if public else ()),
            compat_origins=frozenset(
                o for o in map(origin_of, _split(settings.compat_allowed_origins)) if o
            ),
            is_compat=is_compat,
            headers=headers,
            render=render,
        )

    def refusal(self, scope: Scope, seen: dict[str, str]) -> Refusal | None:
        """Why the request must stop here, or None. `seen`: its headers that matter (`picked`)."""
        host = seen.get("host")
        if host is not None and not self.host_allowed(host, scope):
            shown = hostname_of(host)
            shown = f" {shown!r}" if _is_host(shown) else ""
            return (
                421,
                "host_not_allowed",
                f"this hub does not answer to the name{shown}: add it to allowed_hosts "
                "(HIVECALL_ALLOWED_HOSTS)",
            )
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # No store keeps NUL in text (PostgreSQL refuses it): refused before it gets there.
            return 400, "invalid_request", "the address must not contain NUL (%00) characters"
        origin = seen.get("origin")
        if self.is_compat(scope["path"]):
            if origin is not None and origin_of(origin) not in self.compat_origins:
                return (
                    403,
                    "cross_site_request",
                    "web pages may not use this API: add the page's origin to "
                    "compat_allowed_origins (HIVECALL_COMPAT_ALLOWED_ORIGINS)",
                )
            return None
        if origin is not None:
            if not self.same_origin(origin, scope, host):
                return 403, "cross_site_request", "a page of another site may not use the hub"
            return None
        if (
            scope["type"] == "http"
            and scope["method"] not in SAFE_METHODS
            and _by_cookie(seen)
            and seen.get("sec-fetch-site") != "same-origin"
        ):
            return (
                403,
                "cross_site_request",
                "a signed-in browser request must come from the hub's own pages "
                "(Origin or Sec-Fetch-Site: same-origin)",
            )
        return None

    def host_allowed(self, host: str, scope: Scope) -> bool:
        if host in self._answered:
            return True
        name = hostname_of(host)
        if (
            "*" in self.hosts
            or name in self.hosts
            or name == "localhost"
            or name.endswith(".localhost")
        ):
            if len(self._answered) < 64:  # the few names people use, not what others send
                self._answered.add(host)
            return True
        ip = _ip(name)
        if ip is None:
            return False  # a name: only the listed ones (rebinding needs a name)
        if ip.is_loopback:
            return True
        # An address, not a name, cannot be rebound: the one this request came in on is ours
        # (a LAN address when the hub listens on 0.0.0.0).
        server = scope.get("server")
        return server is not None and _ip(str(server[0])) == ip

    def same_origin(self, origin: str, scope: Scope, host: str | None) -> bool:
        seen = origin_of(origin)
        if seen is None:
            return False  # "null" and anything else that is not an origin
        if seen in self.own_origins:
            return True
        if host is None:
            return False
        scheme = {"ws": "http", "wss": "https"}.get(scope["scheme"], scope["scheme"])
        return seen == origin_of(f"{scheme}://{host}")

    def cors(self, scope: Scope, seen: dict[str, str]) -> dict[str, str] | None:
        """CORS headers for a compat API request from a page that may use it, else None."""
        origin = seen.get("origin")
        if origin is None or not self.is_compat(scope["path"]):
            return None
        if origin_of(origin) not in self.compat_origins:
            return None
        return {"access-control-allow-origin": origin, "vary": "Origin"}


class Boundary:
    """ASGI middleware applying `rules` to every HTTP request and WebSocket handshake."""

    def __init__(self, app: ASGIApp, *, rules: Rules) -> None:
        self.app = app
        self.rules = rules
        self._headers = _raw(rules.headers.items())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        seen = picked(scope)
        refused = self.rules.refusal(scope, seen)
        if refused is not None:
            status, code, message = refused
            log.info("request refused at the boundary", extra={"code": code, "status": status})
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = self.rules.render(scope["path"], status, code, message)
            await response(scope, receive, _adding(send, self._headers))
            return
        extra = self._headers
        cors = self.rules.cors(scope, seen)
        if cors is not None:
            extra = extra + _raw(cors.items())
            if scope["method"] == "OPTIONS" and "access-control-request-method" in seen:
                preflight = Response(
                    status_code=204,
                    headers={
                        "access-control-allow-methods": "GET, POST, OPTIONS",
                        "access-control-allow-headers": CORS_HEADERS,
                        "access-control-max-age": "600",
                    },
                )
                await preflight(scope, receive, _adding(send, extra))
                return
        await self.app(scope, receive, _adding(send, extra))


def _adding(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """`send`, with `extra` headers on the response; a route's own choice of one wins (the join
    page's referrer policy)."""
    names = {k for k, _ in extra}

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            own = message.get("headers") or []
            if any(k.lower() in names for k, _ in own):
                taken = {k.lower() for k, _ in own}
                added = [(k, v) for k, v in extra if k not in taken]
            else:
                added = extra
            message = {**message, "headers": [*own, *added]}
        await send(message)

    return sending


# The request headers the boundary reads (ASGI header names are lower case).
_PICKED = frozenset(
    {
        b"host",
        b"origin",
        b"authorization",
        b"cookie",
        b"sec-fetch-site",
        b"access-control-request-method",
    }
)


def picked(scope: Scope) -> dict[str, str]:
    """The headers that matter here, in one pass (the first of each)."""
    seen: dict[str, str] = {}
    for key, value in scope["headers"]:
        if key in _PICKED:
            seen.setdefault(key.decode("latin-1"), value.decode("latin-1"))
    return seen


# -- parsing -----------------------------------------------------------------------------------


def hostname_of(host: str) -> str:
    """A Host header's (or netloc's) name: lower case, without port, brackets or final dot."""
    host = host.strip().lower().rpartition("@")[2]
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an Origin header or URL, lower case, without a default port;
    None when it is not an http(s) origin ("null", a path, a query…)."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and str(port) != DEFAULT_PORTS[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def _sources(url: str) -> list[str]:
    origin = origin_of(url)
    return [origin] if origin else []


def _livekit(url: str) -> list[str]:
    """The LiveKit server's signalling (ws/wss) and HTTP origins; LiveKit Cloud may move a
    client to another region's host of its domain."""
    if not url:
        return []
    parts = urlsplit(url.lower())
    secure = parts.scheme in ("wss", "https")
    origin = origin_of(f"{'https' if secure else 'http'}://{parts.netloc}")
    if origin is None:
        return []
    rest = origin.partition("://")[2]
    found = [f"{'wss' if secure else 'ws'}://{rest}", origin]
    for cloud in ("livekit.cloud", "livekit.run"):
        if (parts.hostname or "").endswith(f".{cloud}"):
            found += [f"wss://*.{cloud}", f"https://*.{cloud}"]
    return found


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_host(name: str) -> bool:
    return _ip(name) is not None or (len(name) <= 253 and bool(_NAME.match(name)))


def _is_origin(raw: str) -> bool:
    try:
        parts = urlsplit(raw)
    except ValueError:
        return False
    bare = parts.path in ("", "/") and not (parts.query or parts.fragment or "@" in parts.netloc)
    return bare and origin_of(raw) is not None


def _by_cookie(seen: dict[str, str]) -> bool:
    """Whether a request would be authenticated by the session cookie (http_api.py `bearer`)."""
    scheme, _, value = seen.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return False
    cookie = seen.get("cookie", "")
    return bool(cookie) and bool(cookie_parser(cookie).get(SESSION_COOKIE))


def _raw(items: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in items]
