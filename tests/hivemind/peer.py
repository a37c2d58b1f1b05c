"""A small HiveMind v1 client for the hub's own tests (the fail-closed rules, fuzzing).

It speaks the protocol as upstream's hivemind-bus-client does, built on hivecall's codecs; the
interop tests (test_interop.py) use the real upstream clients instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from hivecall.hivemind import binary
from hivecall.hivemind.crypto import Sealer, derive_key, envelope, envelope_iv, new_iv
from hivecall.hivemind.encodings import Encoding
from hivecall.hivemind.wire import HiveMessage, MsgType, bus, parse


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
        from hivecall.hivemind.crypto import Cipher

        cipher = Cipher(reply.payload["cipher"])
        key = derive_key(self.password, iv, envelope_iv(reply.payload["envelope"]))
        self.sealer = Sealer(cipher, key)
        self.binarize = binarize
        await self.send(HiveMessage(MsgType.HELLO, {"session": {"session_id": session}}))

    async def send_plain(self, msg_type: MsgType, payload: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(HiveMessage(msg_type, payload).as_dict()))

    def seal(self, msg: HiveMessage) -> str | bytes:
        assert self.sealer is not None
        if self.binarize:
            return self.sealer.seal(binary.encode(msg.msg_type, msg.payload))
        return self.sealer.seal_json(msg.to_json(), self.encoding)

    async def send(self, msg: HiveMessage) -> None:
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
        assert self.sealer is not None
        if isinstance(raw, bytes):
            frame = binary.decode(self.sealer.open(raw)[1], max_inflated=2**22)
            assert isinstance(frame.payload, dict)
            return HiveMessage(frame.msg_type, frame.payload, frame.metadata)
        obj = json.loads(raw)
        if "ciphertext" not in obj:
            return parse(obj)  # a plaintext resend of the offer, before the key
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
