"""An utterance answered: one bridge turn on the client's agent, spoken back on the bus.

A `recognizer_loop:utterance` (or a satellite's spoken one, satellites.py) runs one bridge turn
and is answered with `speak` and `ovos.utterance.handled`; a spoken one gets its answer's audio
too (TTS_AUDIO, voice.py). A long turn first says it has started. A connection may have
MAX_TURNS running at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import Any

from websockets.exceptions import ConnectionClosed

from hivecall.errors import Forbidden, HivecallError
from hivecall.hivemind.connection import Connection
from hivecall.hivemind.voice import Speech, tts_frame
from hivecall.hivemind_protocol.wire import BusMessage, MsgType, bus
from hivecall.hub import Hub
from hivecall.turns.handle import started_line
from hivecall.turns.request import TurnRequest

log = logging.getLogger(__name__)

UTTERANCE = "recognizer_loop:utterance"
MAX_TURNS = 4  # turns one connection may have running at once
DEFAULT_AGENT_TTL = 2.0  # seconds the hub's first agent is remembered
MAX_PUSHED_TTS = 4  # unasked answers remembered per connection (to skip their speak:synth)


def bridge_session(client_id: str, session: str) -> str:
    """A client's session as a bridge session id: scoped to the client, so one client can
    never continue (or read the history of) another client's conversation."""
    digest = hashlib.sha256(f"{client_id}\0{session}".encode()).hexdigest()
    return f"hm-{digest[:40]}"


class Answers:
    def __init__(self, hub: Hub, speech: Speech) -> None:
        self._hub = hub
        self.speech = speech
        self._default: tuple[float, str] | None = None

    async def claim(self, conn: Connection, msg_type: MsgType, bus_type: str | None) -> bool:
        """Count one more turn for `conn`; False (and the client told) when it has too many.
        The turn is given back when its answer has gone (or it ended without one)."""
        if conn.turns >= MAX_TURNS:
            await conn.refuse(msg_type, bus_type, "too many turns at once")
            return False
        conn.turns += 1
        return True

    async def answer(
        self, conn: Connection, m: BusMessage, utterance: str, *, voice: bool = False
    ) -> None:
        """One bridge turn, on a claimed turn; `voice`: the utterance was spoken, so the answer
        is spoken too."""
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
            await conn.send(bus("ovos.utterance.handled", {}, context))
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
        await conn.send(
            bus("speak", {"utterance": text, "lang": lang, "expect_response": False}, context)
        )
        if voice:
            await self.send_audio(conn, text, lang)

    async def send_audio(self, conn: Connection, text: str, lang: str) -> None:
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
        with contextlib.suppress(ConnectionClosed):
            await conn.send_bin(tts_frame(audio, text, lang))

    async def _default_agent(self) -> str:
        """The hub's first agent, for clients added without one (looked up every 2 s)."""
        now = time.monotonic()
        if self._default is None or now - self._default[0] > DEFAULT_AGENT_TTL:
            agents = await self._hub.agents.list()
            if not agents:
                raise Forbidden("this hub has no agent yet", code="no_agent")
            self._default = (now, agents[0].id)
        return self._default[1]
