"""The participants' signal endpoint: `/rtc` (v0) and `/rtc/v1` websockets, and their `validate`.

There is no SFU in the stand-in, so no websocket is ever accepted. Each attempt is checked as
livekit-server's RTCService.validateInternal does, recorded (`LiveKitStandin.rtc_attempts`), then
refused before the upgrade with an HTTP status and a plain-text reason:

- no token / token that does not verify -> 401 ("no permissions to access the room",
  "invalid token: …"); no `roomJoin` grant -> 401 "permissions denied"; no identity -> 400;
- room missing while `auto_create` is off -> 404 "requested room does not exist";
- room at `max_participants` (agents and egress not counted) -> 500 "room has exceeded its max
  participants" (livekit-server fails the join with that error before upgrading);
- otherwise -> `rtc_refusal_status` (403 by default) with a "no SFU here" text. 401/403 are the
  statuses both livekit-client (ConnectionError NotAllowed, carrying the text) and the Rust/Python
  SDK ("authentication rejected … not retrying") give up on at once: one attempt, one validate.
  A 5xx is retried (3 more attempts in the Rust SDK) and reaches livekit-client's caller as an
  InternalError without the text.

Clients then probe `GET …/validate` with the same query (livekit-client does after any failed
upgrade, Rust/Python `rtc.Room.connect` too); it runs the same checks and answers the same status
and text, so the failure surfaces with that reason. A 404 without "requested room does not exist"
would make livekit-client retry on the v0 path forever, so the stand-in never answers one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from livekit.api.access_token import Claims
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket

from tests.livekit_standin.records import RtcAttempt, describe

if TYPE_CHECKING:
    from tests.livekit_standin.server import LiveKitStandin

NO_SFU = "no SFU here: the hivecall LiveKit stand-in records joins and refuses them"
DEPENDENT_KINDS = ("agent", "egress")


def _token(query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    header = headers.get("authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ")
    return query.get("access_token", "")


def check(
    lk: LiveKitStandin,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    websocket: bool,
) -> RtcAttempt:
    """Run livekit-server's join validation and record the attempt with its refusal."""
    attempt = RtcAttempt(
        path=path,
        websocket=websocket,
        room=query.get("room", ""),
        identity="",
        name="",
        kind="",
        grants=None,
        attributes={},
        metadata="",
        query={k: v for k, v in query.items() if k != "access_token"},
        status=0,
        reason="",
        token_valid=False,
    )
    attempt.status, attempt.reason = _refusal(lk, _token(query, headers), attempt)
    with lk.lock:
        lk.rtc_attempts.append(attempt)
    return attempt


def _refusal(lk: LiveKitStandin, token: str, attempt: RtcAttempt) -> tuple[int, str]:
    if not token:
        return 401, "no permissions to access the room"
    try:
        claims: Claims = lk.verifier.verify(token)
    except Exception as e:
        return 401, f"invalid token: {describe(e)}"
    video = claims.video
    attempt.token_valid = True
    attempt.identity, attempt.name, attempt.kind = claims.identity, claims.name, claims.kind
    attempt.grants = video
    attempt.attributes = dict(claims.attributes or {})
    attempt.metadata = claims.metadata
    if video is None or not video.room_join:
        return 401, "permissions denied"
    if video.room:
        attempt.room = video.room
    if not claims.identity:
        return 400, "identity cannot be empty"
    with lk.lock:
        state = lk.room_state(attempt.room)
        if state is None:
            if not lk.auto_create:
                return 404, "requested room does not exist"
        elif (
            claims.kind not in DEPENDENT_KINDS
            and claims.identity not in state.participants
            and state.info.max_participants > 0
            and state.counted() >= state.info.max_participants
        ):
            return 500, "room has exceeded its max participants"
    return lk.rtc_refusal_status, NO_SFU


async def serve(lk: LiveKitStandin, websocket: WebSocket) -> None:
    attempt = check(
        lk, websocket.url.path, websocket.query_params, websocket.headers, websocket=True
    )
    await websocket.send_denial_response(
        PlainTextResponse(attempt.reason, status_code=attempt.status)
    )


async def validate(lk: LiveKitStandin, request: Request) -> Response:
    attempt = check(lk, request.url.path, request.query_params, request.headers, websocket=False)
    # livekit-server lets any origin read the validate answer.
    return PlainTextResponse(
        attempt.reason,
        status_code=attempt.status,
        headers={"access-control-allow-origin": "*"},
    )
