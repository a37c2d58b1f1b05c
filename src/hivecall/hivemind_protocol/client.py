"""The client side: hivecall asking a remote HiveMind hub (hivecall's own, or hivemind-core).

`HiveMindConnection` speaks v1 as upstream's hivemind-bus-client does (password handshake,
AES-GCM or ChaCha20-Poly1305, JSON-B64 frames out, any frame in) and asks one question at a
time: a bus `recognizer_loop:utterance`, answered by `speak` messages up to
`ovos.utterance.handled`. `HiveMindSolver` is the small synchronous API upstream's solver
plugin has (`spoken_answer(query)`); the `hivemind` runtime (runtimes/hivemind.py) keeps one
connection per agent. The password never appears in an error, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from hivecall.hivemind_protocol import binary
from hivecall.hivemind_protocol.crypto import (
    Cipher,
    CryptoError,
    Sealer,
    derive_key,
    envelope,
    envelope_iv,
    new_iv,
)
from hivecall.hivemind_protocol.encodings import Encoding
from hivecall.hivemind_protocol.wire import (
    TOO_MANY,
    V1_OFF,
    HiveMessage,
    MsgType,
    WireError,
    bus,
    parse,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 5678
HANDLED = "ovos.utterance.handled"
MAX_FRAME = 1 << 22


# Close reasons of a hivecall hub worth passing on as they are (anything else a hub says stays
# out of errors: it is the remote side's text).
HUB_REFUSALS = frozenset({V1_OFF, TOO_MANY[1]})


def _close_reason(e: ConnectionClosed) -> str:
    return e.rcvd.reason if e.rcvd is not None else ""


class HiveMindError(Exception):
    """Talking to the remote hub failed. `kind`: unreachable, refused (credentials), protocol,
    timeout. The message never carries a credential."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Identity:
    """Where a remote hub is and who we are to it."""

    host: str
    access_key: str = field(repr=False)
    password: str = field(repr=False)
    port: int = DEFAULT_PORT
    tls: bool = False
    site_id: str = "hivecall"
    useragent: str = "hivecall"

    @classmethod
    def of(cls, address: str, secret: str, **kw: Any) -> Identity:
        """From a hub address (`ws://`, `wss://`, `http://` or `https://` HOST[:PORT]) and
        `ACCESS_KEY:PASSWORD`."""
        parts = urlsplit(address if "://" in address else f"ws://{address}")
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
            raise ValueError("a HiveMind hub address is ws://HOST[:PORT] or wss://HOST[:PORT]")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as e:
            raise ValueError("the HiveMind hub address has a bad port") from e
        key, sep, password = secret.partition(":")
        if not sep or not key or not password:
            raise ValueError("HiveMind credentials are ACCESS_KEY:PASSWORD")
        tls = parts.scheme in ("wss", "https")
        return cls(parts.hostname, key, password, port=port, tls=tls, **kw)

    @property
    def url(self) -> str:
        auth = base64.b64encode(f"{self.useragent}:{self.access_key}".encode()).decode()
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}/?authorization={auth}"

    @property
    def where(self) -> str:
        """The hub's address, for messages (no credential)."""
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}"


class HiveMindConnection:
    """One authenticated, encrypted connection to a remote hub. Not for concurrent asks: the
    runtime serializes them (HiveMind answers carry no request id)."""

    def __init__(self, ws: ClientConnection, identity: Identity) -> None:
        self._ws = ws
        self.identity = identity
        self._sealer: Sealer | None = None
        self._encoding = Encoding.B64
        self.session_id = uuid.uuid4().hex

    @classmethod
    async def open(
        cls, identity: Identity, *, within: float = 10.0, tls: ssl.SSLContext | None = None
    ) -> HiveMindConnection:
        ctx = tls if tls is not None else (ssl.create_default_context() if identity.tls else None)
        try:
            async with asyncio.timeout(within):
                ws = await connect(
                    identity.url,
                    ssl=ctx,
                    max_size=MAX_FRAME,
                    compression=None,
                    open_timeout=within,
                    ping_interval=30,
                    ping_timeout=30,
                    close_timeout=2,
                )
                conn = cls(ws, identity)
                try:
                    await conn._handshake()
                except BaseException:
                    await ws.close()
                    raise
                return conn
        except TimeoutError as e:
            raise HiveMindError(
                f"{identity.where} did not finish the handshake", kind="timeout"
            ) from e
        except (OSError, InvalidHandshake, InvalidURI) as e:
            raise HiveMindError(f"could not reach {identity.where}", kind="unreachable") from e
        except ConnectionClosed as e:
            said = _close_reason(e)
            if said in HUB_REFUSALS:  # a hivecall hub that says why (v1 off, rate limited)
                raise HiveMindError(f"{identity.where} refused: {said}", kind="refused") from e
            raise HiveMindError(
                f"{identity.where} refused the access key or password", kind="refused"
            ) from e

    async def _handshake(self) -> None:
        while (await self._recv_plain()).msg_type is not MsgType.SHAKE:
            pass  # the hub's hello comes first
        iv = new_iv()
        await self._ws.send(
            json.dumps(
                HiveMessage(
                    MsgType.SHAKE,
                    {
                        "binarize": False,
                        "encodings": [Encoding.B64.value, Encoding.B91.value, Encoding.HEX.value],
                        "ciphers": [Cipher.AES_GCM.value, Cipher.CHACHA20_POLY1305.value],
                        "envelope": envelope(self.identity.password, iv),
                    },
                ).as_dict()
            )
        )
        reply = await self._recv_plain()
        while "envelope" not in reply.payload:  # a resent offer
            reply = await self._recv_plain()
        try:
            self._encoding = Encoding(reply.payload.get("encoding") or Encoding.HEX.value)
            cipher = Cipher(reply.payload.get("cipher") or Cipher.AES_GCM.value)
            server_iv = envelope_iv(reply.payload["envelope"])
        except (ValueError, CryptoError) as e:
            raise HiveMindError("the hub's handshake is malformed", kind="protocol") from e
        key = await asyncio.to_thread(derive_key, self.identity.password, iv, server_iv)
        self._sealer = Sealer(cipher, key)
        session = {"session_id": self.session_id, "site_id": self.identity.site_id}
        await self._send(
            HiveMessage(MsgType.HELLO, {"session": session, "site_id": self.identity.site_id})
        )

    async def _recv_plain(self) -> HiveMessage:
        raw = await self._ws.recv()
        try:
            if not isinstance(raw, str):
                raise WireError("a binary frame before the key")
            return parse(json.loads(raw))
        except (ValueError, RecursionError) as e:
            raise HiveMindError("the hub's handshake is malformed", kind="protocol") from e

    async def _send(self, msg: HiveMessage) -> None:
        assert self._sealer is not None
        await self._ws.send(self._sealer.seal_json(msg.to_json(), self._encoding))

    async def _recv(self) -> HiveMessage | None:
        """The next message (None for frames this client does not read, such as audio)."""
        assert self._sealer is not None
        raw = await self._ws.recv()
        try:
            if isinstance(raw, bytes):
                frame = binary.decode(self._sealer.open(raw)[1], max_inflated=MAX_FRAME)
                if not isinstance(frame.payload, dict):
                    return None
                return HiveMessage(frame.msg_type, frame.payload, frame.metadata)
            obj = json.loads(raw)
            if not isinstance(obj, dict) or "ciphertext" not in obj:
                raise WireError("plaintext after the handshake")
            return parse(json.loads(self._sealer.open_json(obj, self._encoding)[1]))
        except (ValueError, RecursionError) as e:  # CryptoError and WireError too
            raise HiveMindError(
                "the hub sent a frame that does not decrypt", kind="protocol"
            ) from e

    async def ask(
        self,
        utterance: str,
        *,
        lang: str = "en-us",
        session_id: str | None = None,
        on_speak: Callable[[str], None] | None = None,
    ) -> list[str]:
        """What the remote agent says to `utterance` (its `speak` utterances, in order).

        `on_speak` hears each one as it comes (a long turn may say it started long before
        its answer)."""
        session = {"session_id": session_id or self.session_id, "site_id": self.identity.site_id}
        context = {
            "source": self.identity.useragent,
            "destination": "HiveMind",
            "platform": "hivecall",
            "session": session,
        }
        data = {"utterances": [utterance], "lang": lang}
        await self._send(bus("recognizer_loop:utterance", data, context))
        spoken: list[str] = []
        while True:
            msg = await self._recv()
            if msg is None or msg.msg_type is not MsgType.BUS:
                continue
            kind, data = msg.payload.get("type"), msg.payload.get("data") or {}
            said = data.get("utterance") if isinstance(data, dict) else None
            if kind == "speak" and isinstance(said, str):
                spoken.append(said)
                if on_speak is not None:
                    on_speak(said)
            elif kind == HANDLED:
                return spoken
            elif kind == "hive.message.refused":
                raise HiveMindError("the hub refused the question", kind="refused")

    async def aclose(self) -> None:
        await self._ws.close()

    @property
    def is_open(self) -> bool:
        return self._ws.close_code is None


class HiveMindSolver:
    """Ask a remote hub from plain (non-async) code, like upstream's solver plugin:

    HiveMindSolver(Identity.of("ws://hub:5678", "KEY:PASSWORD")).spoken_answer("hi")
    """

    def __init__(self, identity: Identity, *, timeout: float = 30.0) -> None:
        self.identity = identity
        self.timeout = timeout

    async def ask(self, query: str, *, lang: str = "en-us") -> str:
        conn = await HiveMindConnection.open(self.identity, within=self.timeout)
        try:
            async with asyncio.timeout(self.timeout):
                return " ".join(await conn.ask(query, lang=lang))
        except TimeoutError as e:
            raise HiveMindError(f"{self.identity.where} did not answer", kind="timeout") from e
        except ConnectionClosed as e:
            raise HiveMindError(
                f"{self.identity.where} closed the connection", kind="protocol"
            ) from e
        finally:
            await conn.aclose()

    def spoken_answer(self, query: str, lang: str = "en-us") -> str:
        """The remote agent's answer (blocking; call it from code without an event loop)."""
        return asyncio.run(self.ask(query, lang=lang))
