"""An agent's work that outlives its tool call in a cloud call: followed, told, stopped.

When the hub answers `ask_computer_agent` with status "running", the tool's result is the hub's
short "started" line at once and `RunningTurns.follow` takes the turn over for the rest of the
call, reading `/api/turns/{id}/events` with the call's token:

- Progress: the latest lines ride along with every reply this agent gives while the work runs
  (`brief()`, added to the reply's instructions by CallFloor), so "how is it going?" gets a
  true answer, fresh at the moment it is asked, without a tool round trip and without putting a
  conversation item in the Realtime session for every line an agent prints.
- The answer: when the turn ends it goes into the conversation as a system message and the
  model is asked to say it (`generate_reply`; OpenAI Realtime has no `say()`), once this agent
  is idle, nobody is speaking to it and no other agent in the room is talking, even if the
  conversation has moved on. The follower lives in the job of the agent that started the turn,
  so that agent says it, whoever holds the floor by then.
- Stop: `cancel()` (the `cancel_computer_agent` tool) cancels this agent's running turns at the
  hub; the tool's reply says so, and the turn's `cancelled` end is then only noted.

livekit-agents' own async tools (`ctx.update()`) were not used: their body runs in the
activity's tool executor, which a closing session drains (waiting for a non-cancellable tool
to return, here up to the turn timeout), a cancellable one brings livekit's own cancel and list
tools to the model, and their deferred reply waits for this session only, not for the room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.voice.agent_activity import ActivityClosedError

from hivecall.cloud.hubclient import HubClient, HubError

log = logging.getLogger(__name__)

Session = AgentSession[None]

PROGRESS_KEPT = 3  # the latest progress lines a reply is told about
QUIET_WAIT_S = 30.0  # the longest an answer waits for the room to fall quiet before it is said
QUIET_POLL_S = 0.2

BRIEF = (
    "Work still running (not finished, so never make up its results): the computer agent has "
    'been working for {elapsed} on "{message}". {progress} If the user asks how it is going, '
    "tell them this."
)
ANSWER_NOTE = 'The computer agent\'s work on "{message}" has ended ({status}). Its answer: {text}'
ANSWER_NOW = (
    'The computer agent\'s work on "{message}" has just ended. Tell the user now, briefly and in '
    "your own words, even if the conversation has moved on (say it is about their earlier "
    "request): {text}"
)
STOPPED_NOTE = 'The computer agent\'s work on "{message}" was stopped, as the user asked.'
# What is said for an end the hub gave no words for (a turn a hub restart left unfinished).
UNSAID = {"interrupted": "The computer agent's work was interrupted: the hub restarted."}
LOST = (
    "I lost track of that work: the hub stopped answering. Its answer will be in the call's "
    "history."
)


@dataclass
class RunningTurn:
    turn_id: str
    message: str
    started: float  # clock() when the tool call started it
    progress: list[tuple[float, str]] = field(default_factory=list)  # (clock(), line), newest last
    cancel_asked: bool = False


def spoken_seconds(seconds: float) -> str:
    """A duration as a person says it: "40 seconds", "2 minutes 5 seconds"."""
    whole = max(0, round(seconds))
    minutes, secs = divmod(whole, 60)
    parts = []
    if minutes:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    if secs or not minutes:
        parts.append(f"{secs} second{'s' if secs != 1 else ''}")
    return " ".join(parts)


class RunningTurns:
    """One agent's hub turns still running, in one call (one per job, like its session)."""

    def __init__(
        self,
        session: Session,
        hub: HubClient,
        *,
        quiet: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.hub = hub
        self._quiet = quiet  # the room beyond this session is quiet (no other agent talking)
        self._clock = clock
        self._turns: dict[str, RunningTurn] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._telling = asyncio.Lock()  # answers are told one at a time
        self.told: list[str] = []  # turn ids whose end reached the conversation, in order

    @property
    def running(self) -> list[RunningTurn]:
        return list(self._turns.values())

    def follow(self, turn_id: str, message: str) -> None:
        """Follow a turn the hub is still running until it ends, then tell its answer."""
        if turn_id in self._turns:  # the same tool call again: the hub joined the same turn
            return
        turn = RunningTurn(turn_id=turn_id, message=message, started=self._clock())
        self._turns[turn_id] = turn
        task = asyncio.create_task(self._follow(turn), name=f"hivecall-follow-{turn_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def brief(self) -> str | None:
        """What a reply should know about the work still running, or None when there is none."""
        now = self._clock()
        out = []
        for turn in self._turns.values():
            if turn.progress:
                at, _ = turn.progress[-1]
                lines = "; ".join(f'"{text}"' for _, text in turn.progress)
                progress = (
                    f"Its latest progress ({spoken_seconds(now - at)} ago, newest last): {lines}."
                )
            else:
                progress = "It has not reported any progress yet."
            out.append(
                BRIEF.format(
                    elapsed=spoken_seconds(now - turn.started),
                    message=turn.message,
                    progress=progress,
                )
            )
        return "\n".join(out) or None

    async def cancel(self) -> str:
        """Stop this agent's running turns; what the cancel tool answers."""
        turns = self.running
        if not turns:
            return "Nothing is running: the computer agent has no work in progress on this call."
        said = []
        for turn in turns:
            turn.cancel_asked = True
            try:
                await self.hub.cancel(turn.turn_id)
            except HubError as e:
                turn.cancel_asked = False  # its end, whatever it is, is told as usual
                if e.code == "turn_finished":
                    said.append(f'The work on "{turn.message}" had already finished.')
                else:
                    log.warning("could not cancel a turn", extra={"code": e.code})
                    said.append(f'I could not stop the work on "{turn.message}": {e.message}.')
                continue
            said.append(f'Stopped the computer agent\'s work on "{turn.message}".')
        return " ".join(said)

    async def aclose(self) -> None:
        """Stop following (the call is over for this agent; the hub's turns go on)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- following one turn -------------------------------------------------------------------

    async def _follow(self, turn: RunningTurn) -> None:
        done: dict[str, Any] = {"status": "lost", "text": LOST}
        try:
            async for event in self.hub.follow(turn.turn_id):
                if event.kind == "progress":
                    text = str(event.data.get("text") or "").strip()
                    if text:
                        turn.progress = [*turn.progress, (self._clock(), text)][-PROGRESS_KEPT:]
                elif event.kind == "done":
                    done = event.data
        except HubError as e:
            log.warning("lost a running turn", extra={"turn_id": turn.turn_id, "code": e.code})
        finally:
            self._turns.pop(turn.turn_id, None)
        await self._tell(turn, done)

    async def _tell(self, turn: RunningTurn, done: dict[str, Any]) -> None:
        status = str(done.get("status") or "")
        text = str(done.get("text") or "").strip() or UNSAID.get(
            status, "The computer agent gave no answer."
        )
        async with self._telling:
            try:
                if status == "cancelled" and turn.cancel_asked:
                    # The cancel tool's reply said so already: only the conversation learns it.
                    await self._note(STOPPED_NOTE.format(message=turn.message))
                    self.told.append(turn.turn_id)
                    return
                await self._until_quiet()
                await self._note(ANSWER_NOTE.format(message=turn.message, status=status, text=text))
                speech = self.session.generate_reply(
                    instructions=ANSWER_NOW.format(message=turn.message, text=text)
                )
                self.told.append(turn.turn_id)
                await speech  # the next answer waits until this one was said
            except (ActivityClosedError, RuntimeError):
                log.info("the session closed before a turn's answer", extra={"status": status})

    async def _until_quiet(self) -> None:
        """Until this agent and the person it hears are idle and the room is quiet (no other
        agent talking), for at most QUIET_WAIT_S: the answer is not held back forever."""
        deadline = self._clock() + QUIET_WAIT_S
        while True:
            await self.session.wait_for_idle()
            if self._quiet() or self._clock() >= deadline:
                return
            await asyncio.sleep(QUIET_POLL_S)

    async def _note(self, text: str) -> None:
        """A system message at the end of the conversation. Made while this agent is idle: the
        update replaces the Realtime conversation with this one, which lacks a reply still
        being made."""
        await self.session.wait_for_idle()
        agent = self.session.current_agent
        chat = agent.chat_ctx.copy()
        chat.add_message(role="system", content=text)
        try:
            await agent.update_chat_ctx(chat)
        except Exception as e:  # the Realtime session refused it: the answer is still said
            log.warning(
                "could not add a note to the conversation", extra={"error": type(e).__name__}
            )
