"""What an established connection's messages do: by message type, held to the client's rights.

A bus `recognizer_loop:utterance` is answered (answers.py), a `speak:synth` spoken
(satellites.py); other bus types the client may send are taken and ignored. A routed message
(broadcast, propagate, escalate) is held to the rules of a direct one: the sender needs the
right for each routing level, and the bus message at the bottom must be one it may send
directly. Disallowed messages are refused with a bus `hive.message.refused` carrying the hub's
one error shape; whatever one connection sends, it can only close itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hivecall.hivemind.answers import UTTERANCE, Answers
from hivecall.hivemind.connection import Connection, Phase, ProtocolViolation
from hivecall.hivemind.satellites import Satellites
from hivecall.hivemind.tasks import Tasks
from hivecall.hivemind_protocol.wire import NESTED, BusMessage, HiveMessage, MsgType

SYNTH = "speak:synth"
# Routing messages this hub forwards: what a nested envelope may be besides a bus message.
ROUTED = frozenset({MsgType.BROADCAST, MsgType.PROPAGATE, MsgType.ESCALATE})

Handler = Callable[[Connection, HiveMessage], Awaitable[None]]


class Dispatch:
    def __init__(
        self,
        *,
        answers: Answers,
        satellites: Satellites,
        tasks: Tasks,
        node_id: str,
        live: dict[Connection, None],
    ) -> None:
        self._answers = answers
        self._satellites = satellites
        self._tasks = tasks
        self._node_id = node_id
        self._live = live  # the listener's connections, the peers a routed message reaches
        self._handlers: dict[MsgType, Handler] = {
            MsgType.HELLO: self._on_hello,
            MsgType.SHAKE: self._on_shake,
            MsgType.BUS: self._on_bus,
            MsgType.SHARED_BUS: self._on_ignored,
            MsgType.BROADCAST: self._on_route,
            MsgType.PROPAGATE: self._on_route,
            MsgType.ESCALATE: self._on_route,
        }

    async def message(self, conn: Connection, msg: HiveMessage) -> None:
        handler = self._handlers.get(msg.msg_type)
        if handler is None:
            await conn.refuse(msg.msg_type, None, "this hub does not handle that type")
            return
        await handler(conn, msg)

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
            await conn.refuse(MsgType.BUS, m.type, "this client may not send that message")
            return
        if m.type == SYNTH:
            await self._satellites.on_synth(conn, m)
            return
        if m.type != UTTERANCE:
            return  # allowed, and nothing on this hub listens for it
        utterances = m.data.get("utterances")
        if (
            not isinstance(utterances, list)
            or not utterances
            or not all(isinstance(u, str) for u in utterances)
        ):
            await conn.refuse(MsgType.BUS, m.type, "utterances must be a list of text")
            return
        if await self._answers.claim(conn, MsgType.BUS, m.type):
            self._tasks.start(self._answers.answer(conn, m, utterances[0]))

    async def _on_route(self, conn: Connection, msg: HiveMessage) -> None:
        """broadcast, propagate, escalate: the sender needs the right for each routing level,
        and the bus message at the bottom must be one it may send directly (else anyone with
        can_propagate could put any bus type on its peers' buses)."""
        level = msg
        while level.msg_type in NESTED:
            if level.msg_type not in ROUTED:  # query, cascade: not handled, not passed on
                await conn.refuse(msg.msg_type, None, "this hub does not route that type")
                return
            if not conn.client.may_route(level.msg_type):
                await conn.refuse(msg.msg_type, None, "this client may not send that message")
                return
            level = level.inner()
        if level.msg_type is not MsgType.BUS:  # hello, shake, intercom…: nothing to check
            await conn.refuse(msg.msg_type, None, "this hub routes only bus messages")
            return
        kind = BusMessage.of(level.payload).type
        if not conn.client.may_inject(kind):
            await conn.refuse(msg.msg_type, kind, "this client may not send that message")
            return
        if msg.msg_type is MsgType.ESCALATE:
            return  # this hub has no parent to escalate to
        inner = msg.inner()
        inner.source_peer = self._node_id
        for other in list(self._live):
            if other is conn or other.phase is not Phase.ESTABLISHED or other.closing:
                continue
            if not other.client.may_receive(kind):
                continue
            self._tasks.start(other.send(inner))
