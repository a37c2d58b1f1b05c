"""The hivemind runtime: an agent whose brain is a remote HiveMind hub (hivecall or upstream).

The agent record is its identity: `base_url` is the hub (`http://HOST:5678`, or `https://` for
a `wss://` hub) and `api_key` is `ACCESS_KEY:PASSWORD` (kept like every agent key: never shown by
the API, never logged). One connection per agent stays open between turns; turns on one agent
take turns on it (HiveMind answers carry no request id), and a dropped connection is opened
again once. The bridge session becomes the remote session, so the remote agent keeps context.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from hivecall.errors import RuntimeFailure
from hivecall.hivemind_protocol.client import HiveMindConnection, HiveMindError, Identity
from hivecall.runtimes.base import Output, Progress, TurnInput, timeout_failure

if TYPE_CHECKING:
    from hivecall.agents.records import AgentRecord


def identity_of(agent: AgentRecord) -> Identity:
    if not agent.base_url or not agent.api_key:
        raise RuntimeFailure(
            f"agent {agent.name!r} needs --base-url (its HiveMind hub) and --api-key "
            "(ACCESS_KEY:PASSWORD)",
            code="runtime_misconfigured",
            spoken=f"Sorry, {agent.name} is missing its HiveMind hub settings.",
        )
    try:
        return Identity.of(agent.base_url, agent.api_key, site_id=agent.machine or "hivecall")
    except ValueError as e:  # the message names the shape, never the secret
        raise RuntimeFailure(
            f"agent {agent.name!r}: {e}",
            code="runtime_misconfigured",
            spoken=f"Sorry, {agent.name} has bad HiveMind hub settings.",
        ) from e


def _failure(agent: AgentRecord, e: HiveMindError) -> RuntimeFailure:
    if e.kind == "refused":
        return RuntimeFailure(
            str(e),
            code="runtime_auth_failed",
            spoken=f"Sorry, {agent.name}'s HiveMind hub refused us.",
        )
    if e.kind == "unreachable":
        return RuntimeFailure(
            str(e),
            code="runtime_unreachable",
            spoken=f"Sorry, I could not reach {agent.name}'s HiveMind hub.",
        )
    return RuntimeFailure(
        str(e), code="runtime_failed", spoken=f"Sorry, {agent.name}'s HiveMind hub failed."
    )


class HiveMindRuntime:
    exclusive = False
    wants_context = False
    # The remote hub keeps the session (the bridge's session id is the remote one).
    resumes_sessions = False
    runs_command = False

    @staticmethod
    def check(fields: Mapping[str, Any], search_path: str | None) -> None:
        return None  # its hub settings are checked when it runs (identity_of)

    @staticmethod
    def problem(agent: AgentRecord, search_path: str | None) -> str | None:
        return None

    def __init__(self) -> None:
        self._conns: dict[str, tuple[Identity, HiveMindConnection]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _connection(self, agent: AgentRecord, identity: Identity) -> HiveMindConnection:
        held = self._conns.get(agent.id)
        if held is not None and held[0] == identity and held[1].is_open:
            return held[1]
        if held is not None:
            await held[1].aclose()
        conn = await HiveMindConnection.open(identity)
        self._conns[agent.id] = (identity, conn)
        return conn

    async def _ask(
        self, turn: TurnInput, identity: Identity, on_speak: Callable[[str], None]
    ) -> list[str]:
        for attempt in (1, 2):
            conn = await self._connection(turn.agent, identity)
            try:
                return await conn.ask(turn.message, session_id=turn.session_id, on_speak=on_speak)
            except ConnectionClosed as e:
                self._conns.pop(turn.agent.id, None)
                if attempt == 2:
                    raise HiveMindError(
                        f"{identity.where} closed the connection", kind="protocol"
                    ) from e
        raise AssertionError("unreachable")

    async def stream(self, turn: TurnInput) -> AsyncIterator[Output]:
        identity = identity_of(turn.agent)
        lock = self._locks.setdefault(turn.agent.id, asyncio.Lock())
        # What the remote hub says while it works is this turn's progress. (No timeout context
        # around a yield: the deadline is the wait's.)
        said: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + turn.timeout

        async def ask() -> list[str]:
            async with lock:
                return await self._ask(turn, identity, said.put_nowait)

        asking = asyncio.ensure_future(ask())
        try:
            while True:
                line = asyncio.ensure_future(said.get())
                done, _ = await asyncio.wait(
                    (asking, line),
                    timeout=max(deadline - loop.time(), 0),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if line in done:
                    yield Progress(line.result())
                    continue
                line.cancel()
                if asking not in done:
                    raise TimeoutError
                break
            spoken = asking.result()
        except TimeoutError as e:
            self._drop(turn.agent.id)  # an answer may still come: never read it as the next one
            raise timeout_failure(turn.agent.name, turn.timeout) from e
        except HiveMindError as e:
            self._drop(turn.agent.id)
            raise _failure(turn.agent, e) from e
        finally:
            asking.cancel()
        yield " ".join(spoken) if spoken else f"{turn.agent.name} had nothing to say."

    def _drop(self, agent_id: str) -> None:
        held = self._conns.pop(agent_id, None)
        if held is not None:
            task = asyncio.ensure_future(held[1].aclose())
            task.add_done_callback(lambda t: t.exception())

    async def aclose(self) -> None:
        for _, conn in self._conns.values():
            await conn.aclose()
        self._conns.clear()
