"""Local calls as the hub runs them: which peers are live, answering offers, hanging up.

Import-light on purpose: the hub holds a LocalCalls whether or not the `local` extra is
installed; aiortc and the models are imported only when a call actually connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from hivecall.agents.records import Agents
from hivecall.bridge import Bridge
from hivecall.calls import TERMINAL, Calls
from hivecall.calls.local import Tuning
from hivecall.calls.records import CallLineIn
from hivecall.errors import Conflict, TooManyRequests
from hivecall.speech import models
from hivecall.store.models import Call
from hivecall.turns.handle import TurnHandle
from hivecall.turns.request import TurnRequest

if TYPE_CHECKING:
    from hivecall.voice.local.conversation import Emit, LocalConversation
    from hivecall.voice.local.peer import LocalPeer
    from hivecall.voice.local.track import SpeechTrack

log = logging.getLogger(__name__)


class LocalCalls:
    def __init__(self, *, calls: Calls, bridge: Bridge, agents: Agents) -> None:
        self._calls = calls
        self._bridge = bridge
        self._agents = agents
        self._peers: dict[str, LocalPeer] = {}
        self._warming: asyncio.Future[None] | None = None
        self.models = models.shared()

    def problem(self) -> str | None:
        return models.problem()

    @property
    def live(self) -> int:
        return sum(not p.closed for p in self._peers.values())

    def check_capacity(self, max_calls: int) -> None:
        if self.live >= max_calls:
            raise TooManyRequests(
                f"this hub is already on {max_calls} local calls (HIVECALL_LOCAL_MAX_CALLS)",
                code="too_many_calls",
                retry_after=30,
            )

    def warm(self) -> None:
        """Start loading the speech models in the background (a no-op once they are loaded)."""
        if self.models.ready or (self._warming is not None and not self._warming.done()):
            return
        self._warming = asyncio.get_running_loop().run_in_executor(None, self.models.warm)
        self._warming.add_done_callback(_log_failure)

    async def answer(self, call: Call, *, offer: str, max_calls: int, tuning: Tuning) -> str:
        """Answer the page's SDP offer for `call` (a local call of the caller's, still ringing)."""
        from hivecall.voice.local.peer import LocalPeer, speaker_only

        if call.mode != "local":
            raise Conflict("this call is not a local call", code="call_mode_mismatch")
        over = Conflict("this call is already connected or over", code="call_connected")
        if call.id in self._peers or call.state != "ringing":
            raise over
        self.check_capacity(max_calls)
        quiet = speaker_only(offer)
        agent = await self._agents.get(call.agent_id)
        call_id = call.id

        def conversation(speaker: SpeechTrack, emit: Emit) -> LocalConversation:
            from hivecall.voice.local.conversation import LocalConversation

            return LocalConversation(
                models=self.models,
                speaker=speaker,
                start_turn=lambda text: self._turn(call_id, agent.id, text),
                cancel_turn=self._bridge.cancel,
                record=lambda lines: self._record(call_id, lines),
                emit=emit,
                agent_name=agent.name,
                tuning=tuning,
            )

        async def phase(name: str, error: tuple[str, str] | None) -> None:
            # A Conflict: the page's hang-up already ended it, and there is nothing to move.
            with contextlib.suppress(Conflict):
                await self._calls.advance(await self._calls.get(call_id), name, error=error)

        async def network(state: str) -> None:
            if line := self._calls.network_line(call_id, state):
                await self._record(call_id, [line])

        peer = LocalPeer(conversation=conversation, phase=phase, network=network)
        peer.on_closed = lambda: self._forget(call_id, peer)
        self._peers[call_id] = peer
        try:
            answer = await peer.answer(offer)
            if quiet:
                await self._calls.mark_speaker_only(call)
            # The call may have been failed meanwhile (the sweeper): then its peer must go.
            if (await self._calls.advance(call, "connecting")).state in TERMINAL:
                raise over
        except BaseException:
            await peer.close()
            raise
        self.warm()
        return answer

    async def _turn(self, call_id: str, agent_id: str, text: str) -> TurnHandle:
        return await self._bridge.start(
            TurnRequest(
                agent=agent_id,
                message=text,
                source="local_call",
                session_id=call_id,
                call_id=call_id,
                caller=f"call:{call_id}",
            )
        )

    async def _record(self, call_id: str, lines: list[CallLineIn]) -> None:
        call = await self._calls.get(call_id)
        if self._calls.accepts_lines(call):
            await self._calls.add_lines(call, lines)

    def _forget(self, call_id: str, peer: LocalPeer) -> None:
        if self._peers.get(call_id) is peer:
            del self._peers[call_id]

    async def hang_up(self, call_id: str) -> None:
        peer = self._peers.get(call_id)
        if peer is not None:
            await peer.close()

    async def aclose(self) -> None:
        """Hang up every call (their last phase reports land before this returns). The hub is
        stopping: a call whose agent is still working hears that its turn is interrupted first
        (the bridge records it so once the calls are down)."""
        peers = list(self._peers.values())
        await asyncio.gather(
            *(p.conversation.interrupted() for p in peers if not p.closed), return_exceptions=True
        )
        await asyncio.gather(*(p.close() for p in peers))


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (e := done.exception()) is not None:
        log.error("the speech models failed to load: %s", e)
