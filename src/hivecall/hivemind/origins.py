"""Which websocket handshakes may carry an Origin: the listener's side of the browser boundary.

A browser always sends Origin, so without this check a page of any site could open
ws://127.0.0.1:5678 (and, with DNS rebinding, the listener under the attacker's name). Satellites
do send one too: websocket-client, under hivemind-bus-client 0.4.4 and the 1.2 line, sends
`Origin: http://HOST:PORT` (https for wss) of the very URL it opens. So a handshake with an
Origin is let through when that Origin is

- in `hivemind_allowed_origins` (a web page the owner trusts), or
- the listener's own origin (Origin and Host name the same place), with a host a rebinding page
  cannot have: an IP address, a loopback name, or a name the hub answers to (`allowed_hosts`,
  public_url's host, this machine's name, the listening host names; web/boundary.py).

Everything else is refused with HTTP 403 in the hub's error shape, before the connection
exists. Handshakes without an Origin are not browsers' and are not looked at here.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from hivecall.boundary import WILDCARD_HOSTS, allowed_hosts, hostname_of, origin_of
from hivecall.errors import Forbidden
from hivecall.hivemind.config import allowed_origins
from hivecall.settings import Settings

log = logging.getLogger(__name__)

REFUSAL = Forbidden(
    "web pages may not open the HiveMind listener: add the page's origin to "
    "hivemind_allowed_origins (HIVECALL_HIVEMIND_ALLOWED_ORIGINS)",
    code="cross_site_request",
)


@dataclass(frozen=True)
class OriginCheck:
    origins: frozenset[str]  # hivemind_allowed_origins, normalized
    hosts: frozenset[str]  # names the hub answers to; "*": any
    scheme: str  # what a client's Origin says for this listener: http, or https for wss

    @classmethod
    def of(cls, settings: Settings) -> OriginCheck:
        hosts = set(allowed_hosts(settings))
        if settings.hivemind_host not in WILDCARD_HOSTS:
            hosts.add(hostname_of(settings.hivemind_host))
        return cls(
            origins=allowed_origins(settings),
            hosts=frozenset(hosts),
            scheme="https" if settings.hivemind_tls_cert else "http",
        )

    def allowed(self, origin: str, host: str | None) -> bool:
        seen = origin_of(origin)
        if seen is None:
            return False  # "null" (sandboxed frames, file:// pages) and non-origins
        if seen in self.origins:
            return True
        if host is None or seen != origin_of(f"{self.scheme}://{host}"):
            return False
        return self._unrebindable(hostname_of(host))

    def _unrebindable(self, name: str) -> bool:
        if "*" in self.hosts or name in self.hosts:
            return True
        if name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False  # a name the hub was not told about: rebinding needs exactly that
        return True

    def refusal(self, connection: ServerConnection, request: Request) -> Response | None:
        """websockets' `process_request`: None to go on, or the 403 to answer with."""
        origins = request.headers.get_all("Origin")
        if not origins:
            return None
        hosts = request.headers.get_all("Host")
        host = hosts[0] if len(hosts) == 1 else None
        if len(origins) == 1 and self.allowed(origins[0], host):
            return None
        log.info("HiveMind handshake refused: it comes from a web page (Origin)")
        response = connection.respond(HTTPStatus.FORBIDDEN, json.dumps(REFUSAL.as_dict()))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response
