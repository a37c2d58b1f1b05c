"""The HiveMind listener: satellites and bus clients reach the hub's agents over HiveMind.

A websocket server in the hub's event loop (started by `hivecall serve` from the app's
lifespan). Per connection: the access key in the query picks the client (unknown: closed at
once); the handshake (handshake.py: v1's password envelopes, or v3's Noise_XXpsk2 when this
`cryptography` has argon2id) gives the connection its sealer (sealing.py), and from then on
every frame is encrypted. Messages go to the bus dispatch (dispatch.py), satellites' audio to
satellites.py.

Fail closed, where upstream's server does not:
- before the handshake only `hello` and `shake` are accepted, and no frame may be large;
- after the first encrypted frame any plaintext frame closes the connection;
- a frame that does not decrypt, a reused nonce, a malformed message: closed;
- the handshake has a deadline; frames have a size limit;
- a v1 client envelope is accepted once, and handshakes that do not finish are limited per
  access key and per address (guard.py); `hivemind_min_protocol` 3 refuses v1 altogether;
- a handshake from a web page (an Origin other than the listener's own) gets 403 (origins.py);
- a routed message (propagate, broadcast, escalate) is held to the rules of a direct one;
- whatever one connection sends, it can only close itself.

Clients are reloaded when they change; a revoked client's connections close.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import socket
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from hivecall.errors import ConfigError
from hivecall.hivemind.answers import Answers
from hivecall.hivemind.clients import HiveClients, key_hash
from hivecall.hivemind.config import PRE_HANDSHAKE_MAX, check, tls_context
from hivecall.hivemind.connection import Connection, Phase, ProtocolViolation
from hivecall.hivemind.dispatch import Dispatch
from hivecall.hivemind.guard import Envelopes, Failures
from hivecall.hivemind.handshake import AUTH_CLOSE, Handshakes
from hivecall.hivemind.noise import NoiseError, argon2_available
from hivecall.hivemind.origins import OriginCheck
from hivecall.hivemind.permissions import ClientRecord
from hivecall.hivemind.satellites import Satellites
from hivecall.hivemind.sealing import V3Sealer
from hivecall.hivemind.tasks import Tasks
from hivecall.hivemind.v3 import NoiseResponder
from hivecall.hivemind.voice import Speech
from hivecall.hivemind_protocol import binary
from hivecall.hivemind_protocol.crypto import CryptoError, new_iv
from hivecall.hivemind_protocol.wire import TOO_MANY, HiveMessage, MsgType, WireError, parse
from hivecall.hub import Hub
from hivecall.secretbox import SecretBox
from hivecall.settings import Settings

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0  # how often the listener looks for changed clients


class HiveMindListener:
    def __init__(
        self, hub: Hub, settings: Settings, clients: HiveClients, *, speech: Speech | None = None
    ) -> None:
        self._clients = clients
        self._max_frame = settings.hivemind_max_frame_bytes
        self.handshake_timeout = settings.hivemind_handshake_timeout
        self.origins = OriginCheck.of(settings)  # web pages refused at the handshake
        self.failures = Failures()  # unfinished handshakes per key and address
        self.node_id = f"hivecall::{socket.gethostname()}"
        self.noise: NoiseResponder | None = None  # protocol v3, when argon2id is available
        if argon2_available():
            self.noise = NoiseResponder(
                home=settings.home, node_id=self.node_id, max_message=self._max_frame
            )
        if settings.hivemind_min_protocol >= 3 and self.noise is None:
            raise ConfigError("hivemind_min_protocol 3 needs argon2id (cryptography 44 or newer)")
        self.live: dict[Connection, None] = {}
        self._tasks = Tasks()
        self._handshakes = Handshakes(
            settings,
            node_id=self.node_id,
            noise=self.noise,
            envelopes=Envelopes(),
            tasks=self._tasks,
        )
        answers = Answers(hub, speech or Speech())
        self._satellites = Satellites(answers, self._tasks)
        self._dispatch = Dispatch(
            answers=answers,
            satellites=self._satellites,
            tasks=self._tasks,
            node_id=self.node_id,
            live=self.live,
        )
        self._by_hash: dict[str, ClientRecord] = {}
        self._version = ""
        self._server: Server | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def envelopes(self) -> Envelopes:
        """The v1 envelopes seen: replays are refused (guard.py)."""
        return self._handshakes.envelopes

    @envelopes.setter
    def envelopes(self, envelopes: Envelopes) -> None:  # tests bring one with their own clock
        self._handshakes.envelopes = envelopes

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    async def start(cls, hub: Hub, settings: Settings) -> HiveMindListener | None:
        """The started listener, or None (logged) when its port cannot be had: the HiveMind
        door is optional, and a hub must still start when, say, hivemind-core holds 5678."""
        check(settings)
        clients = HiveClients(store=hub.store, box=SecretBox.open(settings.home), agents=hub.agents)
        listener = cls(hub, settings, clients)
        await listener.refresh()
        host = settings.hivemind_host or settings.host
        try:
            listener._server = await serve(
                listener._handle,
                host,
                settings.hivemind_port,
                compression=None,  # per-connection deflate state costs ~100 KiB each
                max_size=settings.hivemind_max_frame_bytes,
                max_queue=4,
                open_timeout=settings.hivemind_handshake_timeout,
                ping_interval=30,
                ping_timeout=30,
                close_timeout=2,
                server_header=None,
                process_request=listener.origins.refusal,
                reuse_address=True,
                ssl=tls_context(settings),
            )
        except OSError:
            log.error(
                "HiveMind listener not started: its port is not available",
                extra={"host": host, "port": settings.hivemind_port},
            )
            return None
        listener.port = listener._server.sockets[0].getsockname()[1]
        listener._refresher = asyncio.create_task(listener._refresh_loop(), name="hm-refresh")
        scheme = "wss" if settings.hivemind_tls_cert else "ws"
        log.info(
            "HiveMind listener started",
            extra={"host": host, "port": listener.port, "scheme": scheme},
        )
        return listener

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        await self._tasks.cancel()

    # -- clients and revocation ---------------------------------------------------------------

    async def refresh(self) -> None:
        """Reload the clients if they changed; apply the change to live connections."""
        version = await self._clients.version()
        if version == self._version:
            return
        records = await self._clients.records()
        self._version = version
        self._by_hash = {r.key_hash: r for r in records}
        self.envelopes.retain(r.id for r in records)
        if self.noise is not None:
            self.noise.psks.retain(records)
        by_id = {r.id: r for r in records}
        for conn in list(self.live):
            now = by_id.get(conn.client.id)
            if (
                now is None
                or now.key_hash != conn.client.key_hash
                or now.password != (conn.client.password)
            ):
                self._close(conn, 1008, "client revoked")
            else:
                conn.client = now

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:
                log.warning("could not reload HiveMind clients", exc_info=True)

    def authenticate(self, path: str) -> tuple[ClientRecord, str] | None:
        """(client, useragent) the request path's `authorization` names; None when none."""
        try:
            fields = parse_qsl(urlsplit(path).query, keep_blank_values=True, max_num_fields=8)
        except ValueError:  # too many fields, or not a query at all
            return None
        raw = next((v for k, v in fields if k == "authorization"), None)
        if not raw or len(raw) > 2048:
            return None
        # parse_qsl reads '+' as a space; base64 has no spaces, so put them back.
        raw = raw.replace(" ", "+")
        try:
            text = base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        useragent, sep, access_key = text.partition(":")
        if not sep or not access_key:
            return None
        client = self._by_hash.get(key_hash(access_key))
        return (client, useragent[:100]) if client else None

    # -- one connection -----------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        address = str(ws.remote_address[0]) if ws.remote_address else "?"
        if self.failures.address_blocked(address):
            log.info("HiveMind connection refused: too many failed handshakes from its address")
            await ws.close(*TOO_MANY)
            return
        auth = self.authenticate(ws.request.path if ws.request else "")
        if auth is None:
            log.info("HiveMind connection refused: unknown access key")
            self.failures.failed(address, None)
            await ws.close(*AUTH_CLOSE)
            return
        client, _useragent = auth
        if self.failures.key_blocked(client.key_hash):
            log.info(
                "HiveMind connection refused: too many failed handshakes with its key",
                extra={"client": client.name},
            )
            await ws.close(*TOO_MANY)
            return
        conn = Connection(ws, client, new_iv())
        self.live[conn] = None
        loop = asyncio.get_running_loop()
        conn.timers.append(loop.call_later(self.handshake_timeout, self._expire, conn))
        try:
            await self._handshakes.offer(conn)
            async for raw in ws:
                await self._frame(conn, raw)
        except ProtocolViolation as e:
            log.info("HiveMind connection closed", extra={"client": client.name, "why": str(e)})
            await ws.close(1008, str(e))
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("HiveMind connection failed", extra={"client": client.name})
            await ws.close(1011, "internal error")
        finally:
            if conn.phase is Phase.NOISE:  # hivemind-bus-client leaves when message 2 fails it
                log.info(
                    "HiveMind client left during the Noise handshake (a wrong password?)",
                    extra={"client": client.name},
                )
            if conn.phase is not Phase.ESTABLISHED:
                self.failures.failed(address, client.key_hash)
            conn.closing = True
            conn.cancel_timers()
            self.live.pop(conn, None)

    async def _frame(self, conn: Connection, raw: str | bytes) -> None:
        """One frame from the client: a handshake message, or a sealed message or bin frame."""
        if conn.phase is not Phase.ESTABLISHED and len(raw) > PRE_HANDSHAKE_MAX:
            raise ProtocolViolation("frame too large before the handshake")
        sealer = conn.sealer
        try:
            if isinstance(raw, bytes):
                if sealer is None:
                    raise ProtocolViolation("encrypted frame before the handshake")
                opened = await sealer.open(raw)
            elif isinstance(sealer, V3Sealer):  # v3 carries only Noise transport messages
                raise ProtocolViolation("plaintext after the handshake")
            else:
                obj = _json(raw, "frame is not JSON")
                if not isinstance(obj, dict) or "ciphertext" not in obj:
                    if await self._handshakes.plaintext(conn, parse(obj)):
                        self._established(conn)
                    return
                if sealer is None:
                    raise ProtocolViolation("encrypted frame before the handshake")
                opened = await sealer.open_json(obj)
            if opened is None:
                return  # a chunk of a long message
            msg = _message(*opened, max_inflated=self._max_frame)
        except (CryptoError, NoiseError) as e:
            raise ProtocolViolation("frame does not decrypt") from e
        except WireError as e:
            raise ProtocolViolation("malformed message") from e
        self._established(conn)
        if isinstance(msg, binary.Frame):
            await self._satellites.on_bin(conn, msg)
        else:
            await self._dispatch.message(conn, msg)

    def _established(self, conn: Connection) -> None:
        if conn.phase is not Phase.ESTABLISHED:
            conn.phase = Phase.ESTABLISHED
            conn.cancel_timers()
            ms = round((time.monotonic() - conn.opened) * 1e3)
            extra = {"client": conn.client.name, "protocol": conn.version, "ms": ms}
            log.info("HiveMind client connected", extra=extra)

    def _expire(self, conn: Connection) -> None:
        if conn.phase is not Phase.ESTABLISHED:
            self._close(conn, 1008, "handshake took too long")

    def _close(self, conn: Connection, code: int, reason: str) -> None:
        if conn.closing:
            return
        conn.closing = True
        self._tasks.start(conn.ws.close(code, reason))


def _json(text: str | bytes, why: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise WireError(why) from e


def _message(binarized: bool, data: bytes, *, max_inflated: int) -> HiveMessage | binary.Frame:
    """An opened frame's message, or its bin frame (satellite audio)."""
    if not binarized:
        return parse(_json(data, "sealed frame is not a message"))
    frame = binary.decode(data, max_inflated=max_inflated)
    if frame.msg_type is MsgType.BIN:
        assert isinstance(frame.payload, bytes)
        return frame
    return parse({"msg_type": frame.msg_type, "payload": frame.payload, "metadata": frame.metadata})
