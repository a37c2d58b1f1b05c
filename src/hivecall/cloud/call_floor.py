"""The floor rule (floor.py) at work in one agent's AgentSession: who answers each utterance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from livekit.agents import NOT_GIVEN, llm, room_io
from livekit.agents.voice.events import ConversationItemAddedEvent, UserInputTranscribedEvent

from hivecall.cloud.floor import Floor, Turn, turn
from hivecall.cloud.hubclient import HubClient
from hivecall.cloud.outbox import Outbox
from hivecall.cloud.room import is_human
from hivecall.cloud.running_turns import RunningTurns, Session

log = logging.getLogger(__name__)


class CallFloor:
    """The floor rule inside one agent's AgentSession.

    Every finished utterance of a person (transcribed by the Realtime model, or typed in the
    room's chat) goes through `heard`: the rule says whether this agent answers, after which
    other agents, and who holds the floor next. Transcript lines go to the hub: people's lines
    from the first agent in the room only (so each is recorded once), this agent's own lines.
    A reply while this agent's work runs is told its latest progress (`work.brief()`).
    """

    def __init__(
        self,
        session: Session,
        hub: HubClient,
        *,
        me: str,
        present: Callable[[], Sequence[str]],
        speaker: Callable[[], str] = lambda: "",
        wait_for: Callable[[Sequence[str]], Awaitable[None]] | None = None,
        work: RunningTurns | None = None,
    ) -> None:
        self.session = session
        self.hub = hub
        self.me = me
        self.work = work
        self.floor = Floor((me,))
        self.turns: list[Turn] = []
        self._present = present
        self._speaker = speaker
        self._wait_for = wait_for
        self._outbox = Outbox(hub)
        self._tasks: set[asyncio.Task[Any]] = set()
        session.on("user_input_transcribed", self._on_transcribed)
        session.on("conversation_item_added", self._on_item)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            log.warning("a floor task failed", extra={"error": type(e).__name__})

    def _on_transcribed(self, ev: UserInputTranscribedEvent) -> None:
        if ev.is_final and ev.transcript.strip():
            self._spawn(self.heard(ev.transcript, speaker=self._speaker(), typed=False))

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if isinstance(item, llm.ChatMessage) and item.role == "assistant" and item.text_content:
            self._outbox.line("agent", item.text_content, self.me)

    async def text_input(self, session: Session, ev: room_io.TextInputEvent) -> None:
        """The room chat's callback (RoomIO): typed lines obey the floor like spoken ones."""
        if ev.participant is not None and not is_human(ev.participant):
            return
        who = (ev.participant.name or ev.participant.identity) if ev.participant else ""
        await self.heard(ev.text, speaker=who, typed=True)

    async def heard(self, text: str, *, speaker: str, typed: bool) -> bool:
        """Apply the rule to one utterance; True when this agent answers it."""
        present = tuple(self._present()) or (self.me,)
        result = turn(self.floor.with_agents(present), text)
        self.floor = result.floor
        self.turns.append(result)
        if present[0] == self.me:
            self._outbox.line("user", text, speaker)
        if not result.answers(self.me):
            if typed:  # heard speech is in the conversation already; typed text is not
                chat = self.session.current_agent.chat_ctx.copy()
                chat.add_message(role="user", content=text)
                await self.session.current_agent.update_chat_ctx(chat)
            return False
        if (before := result.before(self.me)) and self._wait_for is not None:
            await self._wait_for(before)
        brief = self.work.brief() if self.work is not None else None
        instructions = brief if brief else NOT_GIVEN
        if typed:
            self.session.generate_reply(user_input=text, instructions=instructions)
        else:
            self.session.generate_reply(instructions=instructions)
        return True

    async def aclose(self) -> None:
        """Stop deciding (after the session closed), and send the lines still queued."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._outbox.aclose()
