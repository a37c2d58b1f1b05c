"""The HiveMind listener: satellites and bus clients reach the hub's agents over HiveMind.

A websocket server in the hub's event loop (started by `hivecall serve` from the app's
lifespan). Per connection: the access key in the query picks the client (unknown: closed at
once); the server sends plaintext `hello` and `shake`; the client's `shake` carries its
password envelope, which is verified (wrong password: closed); the server answers with its own
envelope and the chosen cipher and encoding, and from then on every frame is encrypted.
The offer also names protocol v3 (a Noise_XXpsk2 handshake keyed by the password, v3.py and
noise.py) when this `cryptography` has argon2id; a client that answers with Noise messages
gets a Noise session instead, and one that does not stays on v1 exactly as before.

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

hivemind-bus-client 0.4.4 listens for the server's `shake` only some tens of milliseconds after
its socket opens, so a shake sent at once is lost and the client stalls 5 s before trying on
its own. The server sends `hello` and its `shake` at once (a client already listening, such
as hivecall's own, answers within milliseconds), again OFFER_DELAY later if the client has
not answered (0.4.4 hears this one), and once more after RESEND_OFFER_AFTER if it is still
silent (a loaded machine). Resending more often does not pay: the 1.2 line checks the
password's strength for ~1.2 s before it answers, and it starts over on every offer it sees.
A client that answers two offers gets one key anyway: the server's iv is fixed per connection
and the key follows the client's latest envelope, which is the one the client keeps.

A bus `recognizer_loop:utterance` runs one bridge turn on the client's agent and is answered
with `speak` and `ovos.utterance.handled`. Satellites may speak instead (`bin` frames of audio,
see voice.py): transcribed off the event loop, run as the same turn, answered with TTS_AUDIO
too. Disallowed messages are refused with a bus `hive.message.refused` carrying the hub's one
error shape.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from hivecall.bridge import TurnRequest
from hivecall.errors import ConfigError, Forbidden, HivecallError
from hivecall.hivemind import binary
from hivecall.hivemind.binary import BinType
from hivecall.hivemind.clients import HiveClients, key_hash
from hivecall.hivemind.config import PRE_HANDSHAKE_MAX, parse_ciphers, parse_encodings
from hivecall.hivemind.config import check as check  # re-exported: app.py checks settings
from hivecall.hivemind.config import tls_context as tls_context
from hivecall.hivemind.connection import Connection, Phase, ProtocolViolation, plain
from hivecall.hivemind.crypto import (
    Cipher,
    CryptoError,
    Sealer,
    derive_key,
    envelope,
    envelope_iv,
    new_iv,
    verify_envelope,
)
from hivecall.hivemind.encodings import Encoding
from hivecall.hivemind.guard import TOO_MANY, V1_OFF, Envelopes, Failures
from hivecall.hivemind.noise import NoiseError, argon2_available, prologue
from hivecall.hivemind.origins import OriginCheck
from hivecall.hivemind.permissions import ClientRecord
from hivecall.hivemind.v3 import NoiseResponder
from hivecall.hivemind.voice import RATE as VOICE_RATE
from hivecall.hivemind.voice import AudioRefused, Speech, Stream, audio_format, pcm_of, tts_frame
from hivecall.hivemind.wire import (
    NESTED,
    BusMessage,
    HiveMessage,
    MsgType,
    WireError,
    bus,
    parse,
)
from hivecall.hub import Hub
from hivecall.secretbox import SecretBox
from hivecall.settings import Settings
from hivecall.turn_handle import started_line

log = logging.getLogger(__name__)

MAX_SHAKES = 8  # client shakes one connection may send
OFFER_DELAY = 0.08  # seconds after the first offer, the second (0.4.4 misses the first)
RESEND_OFFER_AFTER = 2.0  # seconds after the offer, if the client has not answered
MAX_TURNS = 4  # turns one connection may have running at once
REFRESH_SECONDS = 1.0  # how often the listener looks for changed clients
DEFAULT_AGENT_TTL = 2.0  # seconds the hub's first agent is remembered
UTTERANCE = "recognizer_loop:utterance"
SYNTH = "speak:synth"
MAX_PUSHED_TTS = 4  # unasked answers remembered per connection (to skip their speak:synth)
REFUSED = "hive.message.refused"
AUTH_CLOSE = (1008, "invalid authorization")
# Routing messages this hub forwards: what a nested envelope may be besides a bus message.
ROUTED = frozenset({MsgType.BROADCAST, MsgType.PROPAGATE, MsgType.ESCALATE})


def bridge_session(client_id: str, session: str) -> str:
    """A client's session as a bridge session id: scoped to the client, so one client can
    never continue (or read the history of) another client's conversation."""
    digest = hashlib.sha256(f"{client_id}\0{session}".encode()).hexdigest()
    return f"hm-{digest[:40]}"


class HiveMindListener:
    def __init__(
        self, hub: Hub, settings: Settings, clients: HiveClients, *, speech: Speech | None = None
    ) -> None:
        self._hub = hub
        self.speech = speech or Speech()
        self._clients = clients
        self._ciphers = parse_ciphers(settings.hivemind_ciphers)
        self._encodings = parse_encodings(settings.hivemind_encodings)
        self._binarize = settings.hivemind_binarize
        self._max_frame = settings.hivemind_max_frame_bytes
        self._handshake_timeout = settings.hivemind_handshake_timeout
        self._min_protocol = settings.hivemind_min_protocol
        self.origins = OriginCheck.of(settings)  # web pages refused at the handshake
        self.envelopes = Envelopes()  # v1 envelopes seen: replays are refused (guard.py)
        self.failures = Failures()  # unfinished handshakes per key and address
        self.node_id = f"hivecall::{socket.gethostname()}"
        self.noise: NoiseResponder | None = None  # protocol v3, when argon2id is available
        if argon2_available():
            self.noise = NoiseResponder(
                home=settings.home, node_id=self.node_id, max_message=self._max_frame
            )
        if self._min_protocol >= 3 and self.noise is None:
            raise ConfigError("hivemind_min_protocol 3 needs argon2id (cryptography 44 or newer)")
        self._offer_payload: dict[str, Any] = {
            "handshake": True,
            "min_protocol_version": self._min_protocol,
            "max_protocol_version": 1,
            "binarize": self._binarize,
            "preshared_key": False,
            "password": True,
            "crypto_required": True,
            "encodings": [e.value for e in self._encodings],
            "ciphers": [c.value for c in self._ciphers],
            **(self.noise.offer() if self.noise else {}),
        }
        self._by_hash: dict[str, ClientRecord] = {}
        self._version = ""
        self.live: dict[Connection, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._default: tuple[float, str] | None = None
        self.port = 0

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
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

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

    def _authenticate(self, path: str) -> tuple[ClientRecord, str] | None:
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
        auth = self._authenticate(ws.request.path if ws.request else "")
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
        conn.timers.append(loop.call_later(self._handshake_timeout, self._expire, conn))
        try:
            await self._offer(conn)
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

    def _expire(self, conn: Connection) -> None:
        if conn.phase is not Phase.ESTABLISHED:
            self._close(conn, 1008, "handshake took too long")

    def _close(self, conn: Connection, code: int, reason: str) -> None:
        if conn.closing:
            return
        conn.closing = True
        self._spawn(conn.ws.close(code, reason))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            with contextlib.suppress(ConnectionClosed):
                await work

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hello(self, conn: Connection) -> dict[str, Any]:
        return {"pubkey": None, "peer": conn.peer, "node_id": self.node_id}

    async def _offer(self, conn: Connection) -> None:
        await conn.ws.send(plain(MsgType.HELLO, self._hello(conn)))
        await self._send_shake_offer(conn)
        loop = asyncio.get_running_loop()
        conn.timers.append(loop.call_later(OFFER_DELAY, self._offer_shake, conn))
        conn.timers.append(
            loop.call_later(OFFER_DELAY + RESEND_OFFER_AFTER, self._offer_shake, conn)
        )

    async def _send_shake_offer(self, conn: Connection) -> None:
        # The same payload every time: a v3 client binds the one it saw into its prologue.
        await conn.ws.send(plain(MsgType.SHAKE, self._offer_payload))

    def _offer_shake(self, conn: Connection) -> None:
        if conn.phase is Phase.OFFERED and not conn.closing:
            self._spawn(self._send_shake_offer(conn))

    async def _frame(self, conn: Connection, raw: str | bytes) -> None:
        if conn.phase is not Phase.ESTABLISHED and len(raw) > PRE_HANDSHAKE_MAX:
            raise ProtocolViolation("frame too large before the handshake")
        try:
            if conn.transport is not None:  # v3: only Noise transport messages
                if isinstance(raw, str):
                    raise ProtocolViolation("plaintext after the handshake")
                opened = conn.transport.open(raw)
                if opened is None:
                    return  # a chunk of a long message
                binarized, data = opened
            elif isinstance(raw, bytes):
                sealer = await self._sealer(conn)
                nonce, data = sealer.open(raw)
                conn.note_nonce(nonce)
                binarized = True
            else:
                try:
                    obj = json.loads(raw)
                except (ValueError, RecursionError) as e:
                    raise WireError("frame is not JSON") from e
                if not isinstance(obj, dict) or "ciphertext" not in obj:
                    await self._plaintext(conn, parse(obj))
                    return
                sealer = await self._sealer(conn)
                nonce, data = sealer.open_json(obj, conn.encoding)
                conn.note_nonce(nonce)
                binarized = False
            if binarized:
                frame = binary.decode(data, max_inflated=self._max_frame)
                if frame.msg_type is MsgType.BIN:
                    self._established(conn)
                    assert isinstance(frame.payload, bytes)
                    await self._on_bin(conn, frame)
                    return
                fields = {"msg_type": frame.msg_type, "payload": frame.payload}
                msg = parse({**fields, "metadata": frame.metadata})
            else:
                try:
                    msg = parse(json.loads(data))
                except (ValueError, RecursionError) as e:  # WireError is a ValueError
                    raise WireError("sealed frame is not a message") from e
        except (CryptoError, NoiseError) as e:
            raise ProtocolViolation("frame does not decrypt") from e
        except WireError as e:
            raise ProtocolViolation("malformed message") from e
        self._established(conn)
        await self._dispatch(conn, msg)

    def _established(self, conn: Connection) -> None:
        if conn.phase is not Phase.ESTABLISHED:
            conn.phase = Phase.ESTABLISHED
            conn.cancel_timers()
            ms = round((time.monotonic() - conn.opened) * 1e3)
            extra = {"client": conn.client.name, "protocol": conn.version, "ms": ms}
            log.info("HiveMind client connected", extra=extra)

    async def _sealer(self, conn: Connection) -> Sealer:
        if conn.sealer is None:
            if conn.key_future is None:
                raise ProtocolViolation("encrypted frame before the handshake")
            conn.sealer = Sealer(conn.cipher, await conn.key_future)
            conn.key_future = None
        return conn.sealer

    async def _plaintext(self, conn: Connection, msg: HiveMessage) -> None:
        if conn.phase is Phase.ESTABLISHED:
            raise ProtocolViolation("plaintext after the handshake")
        if msg.msg_type is MsgType.SHAKE:
            await self._client_shake(conn, msg)
        elif msg.msg_type is not MsgType.HELLO:  # a plaintext hello is unauthenticated: ignored
            raise ProtocolViolation("only hello and shake before the handshake")

    async def _client_shake(self, conn: Connection, msg: HiveMessage) -> None:
        conn.shakes += 1
        if conn.shakes > MAX_SHAKES:
            raise ProtocolViolation("too many handshakes")
        p = msg.payload
        if "noise" in p:
            await self._noise_shake(conn, p["noise"])
            return
        if conn.noise is not None:
            raise ProtocolViolation("a v1 handshake inside a v3 one")
        if self._min_protocol >= 3:
            log.info("HiveMind v1 client refused: v1 is off", extra={"client": conn.client.name})
            raise ProtocolViolation(V1_OFF)
        env = p.get("envelope")
        if not isinstance(env, str):
            raise ProtocolViolation("only the password handshake is supported")
        try:
            client_iv = envelope_iv(env)
            good = verify_envelope(env, conn.client.password)
        except CryptoError as e:
            raise ProtocolViolation("malformed envelope") from e
        if not good:
            log.info("HiveMind client refused: wrong password", extra={"client": conn.client.name})
            raise ProtocolViolation(AUTH_CLOSE[1])
        if not self.envelopes.first_use(conn.client.id, client_iv):
            log.info(
                "HiveMind client refused: replayed envelope", extra={"client": conn.client.name}
            )
            raise ProtocolViolation("envelope replayed")
        cipher = _first(p.get("ciphers"), self._ciphers, Cipher.AES_GCM)
        encoding = _first(p.get("encodings"), self._encodings, Encoding.HEX)
        if cipher is None or encoding is None:
            raise ProtocolViolation("no cipher or encoding in common")
        conn.cipher, conn.encoding = cipher, encoding
        conn.binarize = self._binarize and p.get("binarize") is True
        conn.client_iv = client_iv
        conn.phase = Phase.KEYED
        conn.sealer = None
        # Both ends derive the key now, in parallel: ours off the event loop.
        conn.key_future = asyncio.ensure_future(
            asyncio.to_thread(derive_key, conn.client.password, client_iv, conn.server_iv)
        )
        await conn.ws.send(
            plain(
                MsgType.SHAKE,
                {
                    "envelope": envelope(conn.client.password, conn.server_iv),
                    "encoding": encoding.value,
                    "cipher": cipher.value,
                },
            )
        )

    async def _noise_shake(self, conn: Connection, params: object) -> None:
        """Protocol v3 (v3.py): message 1 is answered with message 2; message 3 ends it."""
        if self.noise is None:
            raise ProtocolViolation("protocol v3 is not offered")
        if not isinstance(params, dict):
            raise ProtocolViolation("malformed Noise message")
        if conn.phase is Phase.OFFERED:
            reply = await self.noise.first(
                conn,
                params,
                prologue=prologue(self._hello(conn), self._offer_payload),
                encodings=self._encodings,
                binarize=self._binarize,
            )
            await conn.ws.send(plain(MsgType.SHAKE, {"noise": {"msg": reply.hex()}}))
        elif conn.phase is Phase.NOISE:
            self.noise.last(conn, params)
            self._established(conn)
        else:
            raise ProtocolViolation("a v3 handshake inside a v1 one")

    # -- messages -----------------------------------------------------------------------------

    async def _dispatch(self, conn: Connection, msg: HiveMessage) -> None:
        handler = self._handlers.get(msg.msg_type)
        if handler is None:
            await self._refuse(conn, msg.msg_type, None, "this hub does not handle that type")
            return
        await handler(self, conn, msg)

    async def _on_hello(self, conn: Connection, msg: HiveMessage) -> None:
        session = msg.payload.get("session")
        if isinstance(session, dict):
            sid = session.get("session_id")
            if isinstance(sid, str) and 0 < len(sid) <= 128:
                conn.session_id = sid
        site = msg.payload.get("site_id")
        if isinstance(site, str) and len(site) <= 128:
            conn.site_id = site

    async def _on_shake(self, conn: Connection, msg: HiveMessage) -> None:
        raise ProtocolViolation("handshake inside an encrypted session")

    async def _on_ignored(self, conn: Connection, msg: HiveMessage) -> None:
        return  # shared_bus: a client sharing its own bus, for monitoring; nothing to do

    async def _on_bus(self, conn: Connection, msg: HiveMessage) -> None:
        m = BusMessage.of(msg.payload)
        if not conn.client.may_inject(m.type):
            await self._refuse(conn, MsgType.BUS, m.type, "this client may not send that message")
            return
        if m.type == SYNTH:
            await self._on_synth(conn, m)
            return
        if m.type != UTTERANCE:
            return  # allowed, and nothing on this hub listens for it
        utterances = m.data.get("utterances")
        if (
            not isinstance(utterances, list)
            or not utterances
            or not all(isinstance(u, str) for u in utterances)
        ):
            await self._refuse(conn, MsgType.BUS, m.type, "utterances must be a list of text")
            return
        if conn.turns >= MAX_TURNS:
            await self._refuse(conn, MsgType.BUS, m.type, "too many turns at once")
            return
        conn.turns += 1
        self._start(self._turn(conn, m, utterances[0]))

    def _start(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_route(self, conn: Connection, msg: HiveMessage) -> None:
        """broadcast, propagate, escalate: the sender needs the right for each routing level,
        and the bus message at the bottom must be one it may send directly (else anyone with
        can_propagate could put any bus type on its peers' buses)."""
        level = msg
        while level.msg_type in NESTED:
            if level.msg_type not in ROUTED:  # query, cascade: not handled, not passed on
                await self._refuse(conn, msg.msg_type, None, "this hub does not route that type")
                return
            if not conn.client.may_route(level.msg_type):
                await self._refuse(
                    conn, msg.msg_type, None, "this client may not send that message"
                )
                return
            level = level.inner()
        if level.msg_type is not MsgType.BUS:  # hello, shake, intercom…: nothing to check
            await self._refuse(conn, msg.msg_type, None, "this hub routes only bus messages")
            return
        kind = BusMessage.of(level.payload).type
        if not conn.client.may_inject(kind):
            await self._refuse(conn, msg.msg_type, kind, "this client may not send that message")
            return
        if msg.msg_type is MsgType.ESCALATE:
            return  # this hub has no parent to escalate to
        inner = msg.inner()
        inner.source_peer = self.node_id
        for other in list(self.live):
            if other is conn or other.phase is not Phase.ESTABLISHED or other.closing:
                continue
            if not other.client.may_receive(kind):
                continue
            self._spawn(self._send(other, inner))

    async def _turn(
        self, conn: Connection, m: BusMessage, utterance: str, *, voice: bool = False
    ) -> None:
        """One bridge turn; `voice`: the utterance was spoken, so the answer is spoken too."""
        started = time.perf_counter()
        asked = m.data.get("lang")
        lang = asked if isinstance(asked, str) and len(asked) <= 16 else "en-us"
        session = m.context.get("session")
        sid = conn.session_id
        if isinstance(session, dict) and isinstance(session.get("session_id"), str):
            sid = session["session_id"][:128] or sid
        context = {
            **m.context,
            "source": m.context.get("destination") or "skills",
            "destination": m.context.get("source") or conn.peer,
        }
        try:
            agent = conn.client.agent_id or await self._default_agent()
            handle = await self._hub.bridge.start(
                TurnRequest(
                    agent=agent,
                    message=utterance,
                    source="hivemind",
                    session_id=bridge_session(conn.client.id, sid),
                    caller=f"hivemind:{conn.client.id}",
                )
            )
            try:
                result = await asyncio.wait_for(handle.result(), self._hub.settings.voice_ack_s)
            except TimeoutError:
                # A long turn: say it has started (satellites take several speaks), then wait.
                await self._speak(conn, context, started_line(handle.agent.name), lang, voice)
                result = await handle.result()
            spoken = result.spoken
        except ConnectionClosed:
            return
        except HivecallError as e:
            spoken = f"Sorry, that did not work: {e.message}"
        except Exception:
            log.exception("HiveMind turn failed", extra={"client": conn.client.name})
            spoken = "Sorry, something went wrong on the hub."
        finally:
            conn.turns -= 1
        try:
            await self._speak(conn, context, spoken, lang, voice)
            await self._send(conn, bus("ovos.utterance.handled", {}, context))
        except ConnectionClosed:
            return
        log.info(
            "HiveMind turn answered",
            extra={"client": conn.client.name, "ms": round((time.perf_counter() - started) * 1e3)},
        )

    async def _speak(
        self, conn: Connection, context: dict[str, Any], text: str, lang: str, voice: bool
    ) -> None:
        """A `speak` on the bus, and its audio too when the request was spoken."""
        if voice:
            conn.pushed_tts = [*conn.pushed_tts[-(MAX_PUSHED_TTS - 1) :], text]
        await self._send(
            conn, bus("speak", {"utterance": text, "lang": lang, "expect_response": False}, context)
        )
        if voice:
            await self._send_tts(conn, text, lang)

    # -- satellites' audio (voice.py) ---------------------------------------------------------

    async def _on_bin(self, conn: Connection, frame: binary.Frame) -> None:
        kind = frame.bin_type
        if kind not in (BinType.RAW_AUDIO, BinType.STT_AUDIO_HANDLE, BinType.STT_AUDIO_TRANSCRIBE):
            await self._refuse(conn, MsgType.BIN, None, "this hub takes only audio bin frames")
            return
        if reason := self.speech.problem():
            await self._refuse(conn, MsgType.BIN, None, reason, code="speech_unavailable")
            return
        assert isinstance(frame.payload, bytes)
        try:
            rate, lang = audio_format(frame.metadata)
            if kind is BinType.RAW_AUDIO:
                if rate != VOICE_RATE:
                    raise AudioRefused("RAW_AUDIO streams must be 16 kHz")
                await self._on_stream(conn, frame.payload, lang)
                return
            pcm, rate = pcm_of(frame.payload, rate)
        except AudioRefused as e:
            await self._refuse(conn, MsgType.BIN, None, str(e))
            return
        if conn.turns >= MAX_TURNS:
            await self._refuse(conn, MsgType.BIN, None, "too many turns at once")
            return
        conn.turns += 1
        if kind is BinType.STT_AUDIO_TRANSCRIBE:
            self._start(self._transcribe_only(conn, pcm, rate, lang))
        else:
            self._start(self._spoken_turn(conn, pcm, rate, lang))

    async def _on_stream(self, conn: Connection, chunk: bytes, lang: str | None) -> None:
        if conn.audio is None:
            conn.audio = Stream()
        for kind, audio in conn.audio.feed(chunk):
            if kind == "start":
                await self._send(conn, bus("recognizer_loop:record_begin", {}, {}))
                continue
            await self._send(conn, bus("recognizer_loop:record_end", {}, {}))
            if kind == "drop":
                continue
            if conn.turns >= MAX_TURNS:
                await self._refuse(conn, MsgType.BIN, None, "too many turns at once")
                continue
            conn.turns += 1
            self._start(self._spoken_turn(conn, audio, VOICE_RATE, lang, echo=True))

    async def _hear(self, conn: Connection, pcm: bytes, rate: int) -> str | None:
        """The words in the audio; None (the client told) when the hub could not hear any."""
        try:
            text = await self.speech.transcribe(pcm, rate)
        except Exception:
            log.exception(
                "HiveMind satellite audio not transcribed", extra={"client": conn.client.name}
            )
            text = ""
        if not text:
            await self._send(conn, bus("recognizer_loop:speech.recognition.unknown", {}, {}))
            return None
        return text

    async def _spoken_turn(
        self, conn: Connection, pcm: bytes, rate: int, lang: str | None, *, echo: bool = False
    ) -> None:
        try:
            text = await self._hear(conn, pcm, rate)
        except BaseException:
            conn.turns -= 1
            raise
        if text is None:
            conn.turns -= 1
            return
        data = {"utterances": [text], "lang": lang or "en-us"}
        context = {"source": conn.peer, "destination": "skills"}
        m = BusMessage(UTTERANCE, data, {"source": conn.peer, "destination": "HiveMind"})
        try:
            if echo:  # a stream: the satellite learns what the hub heard (as upstream tells it)
                await self._send(conn, bus(UTTERANCE, data, context))
        except BaseException:
            conn.turns -= 1
            raise
        await self._turn(conn, m, text, voice=True)  # _turn gives the turn back

    async def _transcribe_only(
        self, conn: Connection, pcm: bytes, rate: int, lang: str | None
    ) -> None:
        try:
            text = await self.speech.transcribe(pcm, rate)
        except Exception:
            log.exception(
                "HiveMind satellite audio not transcribed", extra={"client": conn.client.name}
            )
            text = ""
        finally:
            conn.turns -= 1
        found = [[text, 1.0]] if text else []
        data = {"transcriptions": found, "lang": lang or "en-us"}
        with contextlib.suppress(ConnectionClosed):
            await self._send(conn, bus("recognizer_loop:transcribe.response", data, {}))

    async def _on_synth(self, conn: Connection, m: BusMessage) -> None:
        text = m.data.get("utterance")
        if not isinstance(text, str) or not text.strip() or len(text) > 4000:
            await self._refuse(conn, MsgType.BUS, m.type, "utterance must be text")
            return
        if text in conn.pushed_tts:  # its audio went out with the answer already
            conn.pushed_tts.remove(text)
            return
        if reason := self.speech.problem():
            await self._refuse(conn, MsgType.BUS, m.type, reason, code="speech_unavailable")
            return
        lang = m.data.get("lang")
        lang = lang if isinstance(lang, str) and len(lang) <= 16 else "en-us"
        self._start(self._send_tts(conn, text, lang))

    async def _send_tts(self, conn: Connection, text: str, lang: str) -> None:
        """`text` spoken, to the client as TTS_AUDIO (nothing when speech is not available)."""
        if self.speech.problem() or not conn.client.may_receive("speak"):
            return
        try:
            audio = await self.speech.synthesize(text)
        except Exception:
            log.exception("HiveMind answer not synthesized", extra={"client": conn.client.name})
            return
        if not audio:
            return
        frame = tts_frame(audio, text, lang)
        if conn.noise is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._send_noise(conn, frame, binarized=True)
            return
        if conn.sealer is None and conn.key_future is not None:
            conn.sealer = Sealer(conn.cipher, await conn.key_future)
            conn.key_future = None
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.send(conn.encode_bin(frame))

    async def _default_agent(self) -> str:
        """The hub's first agent, for clients added without one (looked up every 2 s)."""
        now = time.monotonic()
        if self._default is None or now - self._default[0] > DEFAULT_AGENT_TTL:
            agents = await self._hub.agents.list()
            if not agents:
                raise Forbidden("this hub has no agent yet", code="no_agent")
            self._default = (now, agents[0].id)
        return self._default[1]

    async def _refuse(
        self,
        conn: Connection,
        msg_type: MsgType,
        bus_type: str | None,
        why: str,
        *,
        code: str = "hivemind_refused",
    ) -> None:
        """Tell the client its message was refused (never a silent drop)."""
        error = Forbidden(why, code=code).as_dict()
        data = {"msg_type": msg_type.value, "type": bus_type, **error}
        await self._send(conn, bus(REFUSED, data, {"destination": conn.peer}))

    async def _send(self, conn: Connection, msg: HiveMessage) -> None:
        if msg.msg_type is MsgType.BUS:
            kind = msg.payload.get("type")
            if isinstance(kind, str) and kind != REFUSED and not conn.client.may_receive(kind):
                return
        if conn.noise is not None:
            body, binarized = conn.noise_body(msg)
            await self._send_noise(conn, body, binarized=binarized)
            return
        if conn.sealer is None and conn.key_future is not None:
            conn.sealer = Sealer(conn.cipher, await conn.key_future)
            conn.key_future = None
        await conn.ws.send(conn.encode(msg))

    async def _send_noise(self, conn: Connection, body: bytes, *, binarized: bool) -> None:
        """Seal and send under the lock: nonces must reach the wire in order, and the chunks of
        a long message together."""
        if conn.send_lock is None:
            return  # the handshake is not done (nothing is sent before it is)
        async with conn.send_lock:
            assert conn.transport is not None
            for frame in conn.transport.seal(body, binarized=binarized):
                await conn.ws.send(frame)

    _handlers: dict[MsgType, Callable[[HiveMindListener, Connection, HiveMessage], Awaitable[None]]]


HiveMindListener._handlers = {
    MsgType.HELLO: HiveMindListener._on_hello,
    MsgType.SHAKE: HiveMindListener._on_shake,
    MsgType.BUS: HiveMindListener._on_bus,
    MsgType.SHARED_BUS: HiveMindListener._on_ignored,
    MsgType.BROADCAST: HiveMindListener._on_route,
    MsgType.PROPAGATE: HiveMindListener._on_route,
    MsgType.ESCALATE: HiveMindListener._on_route,
}


def _first(wanted: Any, allowed: tuple[Any, ...], default: Any) -> Any:
    """The first of the client's choices the server allows (upstream: the client's order)."""
    if wanted is None:
        wanted = [default]
    if not isinstance(wanted, list):
        return None
    allowed_values = {a.value: a for a in allowed}
    for w in wanted[:32]:
        if isinstance(w, str) and w in allowed_values:
            return allowed_values[w]
    return None
