"""`hivecall serve`: the app on its listeners (listening.py), plain and TLS, until interrupted.

Two uvicorn servers share one app in one event loop: the plain one owns the app's lifespan
(it always exists: loopback), the TLS one follows it. On shutdown the owner stops its follower
first, so no request reaches a hub that is closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import uvicorn

from hivecall import tls
from hivecall.errors import ConfigError
from hivecall.interfaces import lan_addresses
from hivecall.listening import Listeners, plan
from hivecall.settings import Settings

log = logging.getLogger(__name__)

# How often a running hub checks its certificate (renewed 30 days before it expires, re-issued
# when the machine's addresses change; a user's own files are reloaded, e.g. after certbot).
RENEW_EVERY_S = 12 * 3600


@dataclass(frozen=True)
class Plan:
    settings: Settings  # with the HiveMind listener on the web certificate when it has none
    listeners: Listeners
    cert: tls.ServerCert | None


def prepare(settings: Settings) -> Plan:
    """The listeners and, with HTTPS on, the certificate (made or renewed now)."""
    lan = lan_addresses()
    listeners = plan(settings, lan)
    if not listeners.tls:
        return Plan(settings, listeners, None)
    cert = tls.ensure(settings, addresses=lan)
    if settings.hivemind_tls_cert is None:
        settings = settings.replace(hivemind_tls_cert=cert.cert, hivemind_tls_key=cert.key)
    return Plan(settings, listeners, cert)


def bind(hosts: tuple[str, ...], port: int) -> tuple[list[socket.socket], int]:
    """Listening sockets for `hosts` on one port (port 0: the first one's free port for all)."""
    socks: list[socket.socket] = []
    try:
        for host in hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say TCP.
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as e:
                raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from e
            port = port or sock.getsockname()[1]
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks, port


class _Follower(uvicorn.Server):
    """Serves the app without its lifespan and leaves the signals to the owner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Owner(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.followers: list[tuple[_Follower, asyncio.Task[None]]] = []
        self.up = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for follower, _ in self.followers:
            follower.should_exit = True
        await asyncio.gather(*(task for _, task in self.followers), return_exceptions=True)
        await super().shutdown(sockets)


def serve(app: object, prepared: Plan, options: Mapping[str, object]) -> None:
    """Serve `app` on the planned listeners until SIGINT/SIGTERM. `options` go to uvicorn."""
    settings, listeners = prepared.settings, prepared.listeners
    plain, port = bind(listeners.plain, settings.port)
    secure: list[socket.socket] = []
    try:
        if listeners.tls:
            secure, _ = bind(listeners.tls, port)
    except BaseException:
        for s in plain:
            s.close()
        raise
    common = {"log_level": "warning", "access_log": False, **options}
    owner = _Owner(uvicorn.Config(app, lifespan="on", **common))  # type: ignore[arg-type]
    follower = None
    if secure and prepared.cert is not None:
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            lifespan="off",
            ssl_certfile=str(prepared.cert.cert),
            ssl_keyfile=str(prepared.cert.key),
            **common,  # type: ignore[arg-type]
        )
        follower = _Follower(config)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it caught
        asyncio.run(_run(owner, follower, plain, secure, settings))


async def _run(
    owner: _Owner,
    follower: _Follower | None,
    plain: list[socket.socket],
    secure: list[socket.socket],
    settings: Settings,
) -> None:
    serving = asyncio.create_task(owner.serve(sockets=plain))
    up = asyncio.create_task(owner.up.wait())
    await asyncio.wait({serving, up}, return_when=asyncio.FIRST_COMPLETED)
    up.cancel()
    renewing = None
    if follower is not None and owner.started:
        task = asyncio.create_task(follower.serve(sockets=secure))
        owner.followers.append((follower, task))
        renewing = asyncio.create_task(_renew(follower, settings))
    try:
        await serving
    finally:
        if renewing is not None:
            renewing.cancel()


async def _renew(follower: _Follower, settings: Settings) -> None:
    """Renew the certificate now and then and load it into the running TLS listener."""
    while True:
        await asyncio.sleep(RENEW_EVERY_S)
        try:
            cert = await asyncio.to_thread(tls.ensure, settings)
            if (cert.issued or cert.user_supplied) and follower.config.ssl is not None:
                follower.config.ssl.load_cert_chain(cert.cert, cert.key)
                if cert.issued:
                    log.info("renewed the hub's certificate", extra={"names": len(cert.names)})
        except Exception as e:  # a bad renewal keeps the certificate being served
            log.error("certificate renewal failed", extra={"error": type(e).__name__})
