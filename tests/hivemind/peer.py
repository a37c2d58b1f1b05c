"""A small HiveMind client for the hub's own tests (the fail-closed rules, fuzzing): the v1
password handshake, or v3 Noise (`noise_handshake`) with hivecall's Noise in the initiator's
role (checked against the `noiseprotocol` library in test_noise.py).

It speaks the protocol as upstream's hivemind-bus-client does, built on hivecall's codecs; the
interop tests (test_interop.py) use the real upstream clients instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import ssl
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from websockets.asyncio.client import ClientConnection, connect

from hivecall.hivemind import noise
from hivecall.hivemind_protocol import binary
from hivecall.hivemind_protocol.crypto import Sealer, derive_key, envelope, envelope_iv, new_iv
from hivecall.hivemind_protocol.encodings import Encoding
from hivecall.hivemind_protocol.wire import HiveMessage, MsgType, bus, parse

psk_of = functools.lru_cache(maxsize=64)(noise.derive_psk)  # argon2id: once per password


class Careless(noise.Handshake):
    """An initiator that does not check the server's message 2: what a client with the wrong
    password would have to be to get as far as sending message 3."""

    def _decrypt_and_hash(self, data: bytes) -> bytes:
        try:
            return super()._decrypt_and_hash(data)
        except noise.NoiseError:
            self._mix_hash(data)
            return b""


def url(port: int, access_key: str, useragent: str = "test-peer", scheme: str = "ws") -> str:
    auth = base64.b64encode(f"{useragent}:{access_key}".encode()).decode()
    return f"{scheme}://127.0.0.1:{port}/?authorization={auth}"


class Peer:
    def __init__(self, ws: ClientConnection, password: str) -> None:
        self.ws = ws
        self.password = password
        self.sealer: Sealer | None = None
        self.encoding = Encoding.B64
        self.binarize = False
        self.offer: dict[str, Any] = {}
        self.hello: dict[str, Any] = {}
        self.transport: noise.Transport | None = None  # v3
        self.noise: noise.Handshake | None = None
        self.static = X25519PrivateKey.generate()

    @classmethod
    async def connect(
        cls, port: int, access_key: str, password: str, *, tls: ssl.SSLContext | None = None
    ) -> Peer:
        where = url(port, access_key, scheme="wss" if tls else "ws")
        ws = await connect(where, max_size=2**22, open_timeout=5, ssl=tls)
        return cls(ws, password)

    async def recv_plain(self) -> HiveMessage:
        raw = await asyncio.wait_for(self.ws.recv(), 5)
        assert isinstance(raw, str)
        return parse(json.loads(raw))

    async def handshake(
        self,
        *,
        ciphers: list[str] | None = None,
        encodings: list[str] | None = None,
        binarize: bool = False,
        password: str | None = None,
        read_offer: bool = True,
        session: str = "s1",
    ) -> None:
        if read_offer:
            hello = await self.recv_plain()
            assert hello.msg_type is MsgType.HELLO
            offer = await self.recv_plain()
            assert offer.msg_type is MsgType.SHAKE
            self.offer = offer.payload
        iv = new_iv()
        await self.send_plain(
            MsgType.SHAKE,
            {
                "binarize": binarize,
                "encodings": encodings or ["JSON-B64"],
                "ciphers": ciphers or ["AES-GCM"],
                "envelope": envelope(password or self.password, iv),
            },
        )
        reply = await self.recv_plain()
        while "envelope" not in reply.payload:  # a resent offer
            reply = await self.recv_plain()
        self.encoding = Encoding(reply.payload["encoding"])
        from hivecall.hivemind_protocol.crypto import Cipher

        cipher = Cipher(reply.payload["cipher"])
        key = derive_key(self.password, iv, envelope_iv(reply.payload["envelope"]))
        self.sealer = Sealer(cipher, key)
        self.binarize = binarize
        await self.send(HiveMessage(MsgType.HELLO, {"session": {"session_id": session}}))

    async def noise_offer(self) -> None:
        """Read the server's hello and shake offer (they go into the v3 prologue)."""
        hello = await self.recv_plain()
        assert hello.msg_type is MsgType.HELLO
        offer = await self.recv_plain()
        assert offer.msg_type is MsgType.SHAKE
        self.hello, self.offer = hello.payload, offer.payload

    async def noise_first(
        self,
        *,
        password: str | None = None,
        binarize: bool = False,
        pattern: str = noise.PATTERN,
        careless: bool = False,
    ) -> dict[str, Any]:
        """Send Noise message 1, read message 2; its payload (NoiseError: wrong password)."""
        psk = psk_of(password or self.password, self.hello["node_id"])
        kind = Careless if careless else noise.Handshake
        self.noise = kind(
            initiator=True,
            static=self.static,
            psk=psk,
            prologue=noise.prologue(self.hello, self.offer),
        )
        ask = noise.canonical_json({"binarize": binarize, "encodings": ["JSON-B64", "JSON-HEX"]})
        msg1 = self.noise.write_message(ask)
        params = {"pattern": pattern, "suite": noise.SUITE, "msg": msg1.hex()}
        await self.send_plain(MsgType.SHAKE, {"noise": params})
        reply = await self.recv_plain()
        while "msg" not in reply.payload.get("noise", {}):  # a resent offer (it has "noise")
            reply = await self.recv_plain()
        payload = self.noise.read_message(bytes.fromhex(reply.payload["noise"]["msg"]))
        self.binarize = binarize
        return json.loads(payload) if payload else {}

    async def noise_last(self, *, tamper: bool = False) -> None:
        assert self.noise is not None
        msg3 = bytearray(self.noise.write_message(b""))
        if tamper:
            msg3[-1] ^= 1
        await self.send_plain(MsgType.SHAKE, {"noise": {"msg": msg3.hex()}})
        self.transport = self.noise.transport(max_message=2**22)

    async def noise_handshake(
        self, *, binarize: bool = False, session: str = "s1", password: str | None = None
    ) -> None:
        """The whole v3 handshake, then the encrypted hello (as hivemind-bus-client 1.2)."""
        await self.noise_offer()
        await self.noise_first(binarize=binarize, password=password)
        await self.noise_last()
        await self.send(HiveMessage(MsgType.HELLO, {"session": {"session_id": session}}))

    async def send_plain(self, msg_type: MsgType, payload: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(HiveMessage(msg_type, payload).as_dict()))

    def seal_noise(self, msg: HiveMessage) -> list[bytes]:
        assert self.transport is not None
        if self.binarize:
            return self.transport.seal(binary.encode(msg.msg_type, msg.payload), binarized=True)
        return self.transport.seal(msg.to_json(), binarized=False)

    def seal(self, msg: HiveMessage) -> str | bytes:
        if self.transport is not None:
            (frame,) = self.seal_noise(msg)
            return frame
        assert self.sealer is not None
        if self.binarize:
            return self.sealer.seal(binary.encode(msg.msg_type, msg.payload))
        return self.sealer.seal_json(msg.to_json(), self.encoding)

    async def send(self, msg: HiveMessage) -> None:
        if self.transport is not None:
            for frame in self.seal_noise(msg):
                await self.ws.send(frame)
            return
        await self.ws.send(self.seal(msg))

    async def utter(self, text: str) -> None:
        await self.send(
            bus(
                "recognizer_loop:utterance",
                {"utterances": [text], "lang": "en-us"},
                {"source": "test-peer", "destination": "HiveMind"},
            )
        )

    async def recv(self, timeout: float = 10) -> HiveMessage:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        if self.transport is not None and isinstance(raw, bytes):
            opened = self.transport.open(raw)
            while opened is None:  # a long message, in chunks
                more = await asyncio.wait_for(self.ws.recv(), timeout)
                assert isinstance(more, bytes)
                opened = self.transport.open(more)
            binarized, data = opened
            if not binarized:
                return parse(json.loads(data))
            frame = binary.decode(data, max_inflated=2**22)
            if isinstance(frame.payload, bytes):  # a bin frame (TTS_AUDIO)
                return HiveMessage(MsgType.BIN, {"bytes": len(frame.payload)}, frame.metadata)
            return HiveMessage(frame.msg_type, frame.payload, frame.metadata)
        assert self.sealer is not None or isinstance(raw, str)
        if isinstance(raw, bytes):
            assert self.sealer is not None
            frame = binary.decode(self.sealer.open(raw)[1], max_inflated=2**22)
            assert isinstance(frame.payload, dict)
            return HiveMessage(frame.msg_type, frame.payload, frame.metadata)
        obj = json.loads(raw)
        if "ciphertext" not in obj:
            return parse(obj)  # a plaintext resend of the offer, before the key
        assert self.sealer is not None
        return parse(json.loads(self.sealer.open_json(obj, self.encoding)[1]))

    async def recv_bus(self, timeout: float = 10) -> tuple[str, dict[str, Any]]:
        while True:
            msg = await self.recv(timeout)
            if msg.msg_type is MsgType.BUS:
                return msg.payload["type"], msg.payload.get("data") or {}

    async def closed(self, timeout: float = 5) -> tuple[int | None, str | None]:
        """Wait for the server to close; (code, reason)."""
        with contextlib.suppress(Exception):  # closed by the server, or the timeout
            async with asyncio.timeout(timeout):
                async for _ in self.ws:
                    pass
        await self.ws.wait_closed()
        rcvd = self.ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd else (None, None)

    async def aclose(self) -> None:
        await self.ws.close()
