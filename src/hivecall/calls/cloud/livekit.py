"""LiveKit's server API as the hub uses it: rooms, dispatches, participants, tokens.

One `livekit-api` client (one aiohttp session) per set of credentials, made on first use, so a
hub without LiveKit never opens one. Errors become hivecall errors that say what failed and
never carry the credentials. Region failover is off: it only helps LiveKit Cloud, and a retry
loop across regions would make a broken setup slow to report instead of quick.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from livekit import api
from livekit.protocol import agent_dispatch, models, room

from hivecall.calls.cloud.wire import AGENT_ID, KIND, WORKER_IDENTITY
from hivecall.errors import HivecallError, NotFound, Unauthorized
from hivecall.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=10)
# What livekit-server (v1.13) starts its error messages with.
TWIRP_WRAPPER = "twirp error unknown: "


class LiveKitError(HivecallError):
    code = "livekit_error"
    status = 502


@dataclass(frozen=True)
class JoinToken:
    url: str
    room: str
    token: str
    identity: str
    expires_at: datetime

    def public(self) -> dict[str, str]:
        return {
            "url": self.url,
            "room": self.room,
            "token": self.token,
            "identity": self.identity,
            "expires_at": self.expires_at.isoformat(),
        }


@dataclass(frozen=True)
class Participant:
    identity: str
    name: str
    kind: str  # human | agent
    agent_id: str | None
    state: str
    joined_at: datetime | None

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "identity": self.identity,
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "joined_at": self.joined_at.isoformat() if self.joined_at else None,
        }
        if self.agent_id:
            out["agent_id"] = self.agent_id
        return out


def missing_settings(settings: Settings) -> list[str]:
    """The LiveKit settings (by environment variable) that are not set."""
    return [
        env
        for env, value in (
            ("LIVEKIT_URL", settings.livekit_url),
            ("LIVEKIT_API_KEY", settings.livekit_api_key),
            ("LIVEKIT_API_SECRET", settings.livekit_api_secret),
        )
        if not value
    ]


def client_url(settings: Settings) -> str:
    """The URL browsers and workers connect to (wss://…); the API accepts either form."""
    url = settings.livekit_url.rstrip("/")
    for plain, secure in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(plain):
            return secure + url[len(plain) :]
    return url


def join_token(
    settings: Settings,
    *,
    room: str,
    identity: str,
    name: str,
    now: datetime | None = None,
) -> JoinToken:
    """A person's token for one room: join, publish audio, subscribe, send data. Nothing else
    (no room admin, no recording, no other room), and it expires."""
    ttl = timedelta(minutes=settings.cloud_token_ttl_minutes)
    now = now or datetime.now(UTC)
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        can_publish_sources=["microphone"],
    )
    jwt = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_attributes({KIND: "human"})
        .with_grants(grants)
        .with_ttl(ttl)
        .to_jwt()
    )
    return JoinToken(client_url(settings), room, jwt, identity, now + ttl)


def verify_worker(settings: Settings, jwt: str) -> None:
    """Check a claim from `hivecall worker`: a LiveKit token signed with this hub's LiveKit
    key and secret (the worker has them anyway: it needs them to register with LiveKit)."""
    try:
        claims = api.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret).verify(
            jwt
        )
    except Exception as e:  # jwt raises a family of errors; all mean "not valid"
        raise Unauthorized("the worker's token is not valid") from e
    if claims.identity != WORKER_IDENTITY or not claims.video or not claims.video.agent:
        raise Unauthorized("the token is not a hivecall worker's")


def _reason(message: str) -> str:
    """The server's words for a failure, without the wrapper livekit-server puts on them
    ("twirp error unknown: no response from servers"), or what is left when it says nothing
    (its 401s are plain text that livekit-api reads as an empty message)."""
    text = message.removeprefix(TWIRP_WRAPPER).strip()
    return text[:200] or "no reason given"


def _participant(info: models.ParticipantInfo) -> Participant:
    attrs = dict(info.attributes)
    is_agent = info.kind == models.ParticipantInfo.Kind.AGENT or attrs.get(KIND) == "agent"
    joined = datetime.fromtimestamp(info.joined_at, UTC) if info.joined_at else None
    return Participant(
        identity=info.identity,
        name=info.name or info.identity,
        kind="agent" if is_agent else "human",
        agent_id=attrs.get(AGENT_ID) or None,
        state=models.ParticipantInfo.State.Name(info.state).lower(),
        joined_at=joined,
    )


class LiveKit:
    """The server API client. Methods take the current settings (the dashboard may change
    them) and reuse one client while the credentials stay the same."""

    def __init__(self) -> None:
        self._api: api.LiveKitAPI | None = None
        self._creds: tuple[str, str, str] | None = None
        # Clients replaced after a credentials change, closed with the hub (a request may
        # still be using one).
        self._retired: list[api.LiveKitAPI] = []

    def _client(self, settings: Settings) -> api.LiveKitAPI:
        creds = (settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret)
        if self._api is None or creds != self._creds:
            old = self._api
            self._api = api.LiveKitAPI(*creds, timeout=TIMEOUT, failover=False)
            self._creds = creds
            if old is not None:
                self._retired.append(old)
        return self._api

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except api.ServerError as e:
            if e.status == 404:
                raise NotFound(f"LiveKit: {what}: not found", code="livekit_not_found") from e
            if e.status in (401, 403):
                raise LiveKitError(
                    f"LiveKit refused to {what}: check LIVEKIT_API_KEY and LIVEKIT_API_SECRET",
                    code="livekit_unauthorized",
                ) from e
            raise LiveKitError(f"LiveKit could not {what}: {_reason(e.message)}") from e
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise LiveKitError(
                f"LiveKit is unreachable (could not {what}); check LIVEKIT_URL",
                code="livekit_unreachable",
            ) from e

    async def create_room(self, settings: Settings, name: str, *, call_id: str) -> None:
        req = room.CreateRoomRequest(
            name=name,
            empty_timeout=settings.cloud_empty_timeout,
            departure_timeout=20,
            max_participants=settings.cloud_max_participants,
            metadata=json.dumps({"call_id": call_id}),
        )
        await self._call("create the room", self._client(settings).room.create_room(req))

    async def dispatch(self, settings: Settings, name: str, metadata: str) -> str:
        req = agent_dispatch.CreateAgentDispatchRequest(
            agent_name=settings.livekit_agent_name, room=name, metadata=metadata
        )
        made = await self._call(
            "dispatch the agent", self._client(settings).agent_dispatch.create_dispatch(req)
        )
        return str(made.id)

    async def participants(self, settings: Settings, name: str) -> list[Participant]:
        req = room.ListParticipantsRequest(room=name)
        out = await self._call(
            "list the participants", self._client(settings).room.list_participants(req)
        )
        return [_participant(p) for p in out.participants]

    async def remove(self, settings: Settings, name: str, identity: str) -> None:
        req = room.RoomParticipantIdentity(room=name, identity=identity)
        try:
            await self._call(
                "remove the participant", self._client(settings).room.remove_participant(req)
            )
        except NotFound as e:
            raise NotFound(
                "nobody with that identity is in the call", code="participant_not_found"
            ) from e

    async def delete_room(self, settings: Settings, name: str) -> None:
        """Close the room (everyone is disconnected). A room already gone is fine."""
        req = room.DeleteRoomRequest(room=name)
        with contextlib.suppress(NotFound):
            await self._call("close the room", self._client(settings).room.delete_room(req))

    async def aclose(self) -> None:
        for client in [*self._retired, *([self._api] if self._api else [])]:
            await client.aclose()
        self._retired.clear()
        self._api = None
