"""Twirp RoomService and AgentDispatchService, as livekit-server answers them.

`POST /twirp/livekit.<Service>/<Method>` with a binary protobuf body (`application/protobuf`, what
`livekit-api` sends) or protobuf JSON (`application/json`, what the JS server SDK sends). Errors
are Twirp JSON `{"code", "msg"}` with the code's HTTP status; the services' own errors (and the
injected failures) say `twirp error unknown: ` before their text, as livekit-server's do.

Auth, as livekit-server's APIKeyAuthMiddleware and service checks do it:
- `Authorization: Bearer <jwt>` verified with `TokenVerifier(key, secret)` (HS256, iss = the
  API key, exp required); a bad header or token -> 401 unauthenticated "invalid token: …".
- CreateRoom, DeleteRoom need `roomCreate`; ListRooms needs `roomList`; the participant methods,
  UpdateRoomMetadata and all AgentDispatchService methods need `roomAdmin` with `room` equal to
  the request's room.
- A missing grant is answered like livekit-server does (`twirpAuthError`): 401 with code
  `unauthenticated` and msg "permissions denied" — not 403/permission_denied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.api.access_token import Claims
from livekit.protocol import agent_dispatch, models, room
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.livekit_standin.records import HandledRequest, TwirpError, describe

if TYPE_CHECKING:
    from tests.livekit_standin.server import LiveKitStandin

MAX_ROOM_NAME_LENGTH = 256  # livekit-server's default limit.max_room_name_length

PERMISSION_DENIED = "permissions denied"
# How livekit-server (v1.13.5) words a service's error: "twirp error unknown: <its text>".
SERVICE_ERROR = "twirp error unknown: "


Handler = Callable[["LiveKitStandin", "Claims | None", Any], Message]


@dataclass(frozen=True)
class Method:
    request: type[Message]
    handler: Handler


def _denied() -> TwirpError:
    return TwirpError("unauthenticated", PERMISSION_DENIED)


def _require_create(claims: Claims | None) -> None:
    if claims is None or claims.video is None or not claims.video.room_create:
        raise _denied()


def _require_list(claims: Claims | None) -> None:
    if claims is None or claims.video is None or not claims.video.room_list:
        raise _denied()


def _require_admin(claims: Claims | None, room_name: str) -> None:
    video = None if claims is None else claims.video
    if video is None or not video.room_admin or video.room != room_name:
        raise _denied()


# -- RoomService ----------------------------------------------------------------------------------


def create_room(lk: LiveKitStandin, claims: Claims | None, req: room.CreateRoomRequest) -> Message:
    _require_create(claims)
    if not req.name:
        raise TwirpError("invalid_argument", "no room name")
    if len(req.name) > MAX_ROOM_NAME_LENGTH:
        raise TwirpError(
            "invalid_argument",
            f"room name length exceeds limits: max length {MAX_ROOM_NAME_LENGTH}",
        )
    return lk.create_room(req)


def list_rooms(lk: LiveKitStandin, claims: Claims | None, req: room.ListRoomsRequest) -> Message:
    _require_list(claims)
    names = set(req.names)
    rooms = [r for name, r in lk.rooms.items() if not names or name in names]
    return room.ListRoomsResponse(rooms=rooms)


def delete_room(lk: LiveKitStandin, claims: Claims | None, req: room.DeleteRoomRequest) -> Message:
    _require_create(claims)
    lk.delete_room(req.room)
    return room.DeleteRoomResponse()


def list_participants(
    lk: LiveKitStandin, claims: Claims | None, req: room.ListParticipantsRequest
) -> Message:
    _require_admin(claims, req.room)
    # livekit-server answers an unknown room with an empty list.
    return room.ListParticipantsResponse(participants=lk.participants(req.room))


def _participant(
    lk: LiveKitStandin, room_name: str, identity: str
) -> models.ParticipantInfo | None:
    return next((p for p in lk.participants(room_name) if p.identity == identity), None)


def get_participant(
    lk: LiveKitStandin, claims: Claims | None, req: room.RoomParticipantIdentity
) -> Message:
    _require_admin(claims, req.room)
    participant = _participant(lk, req.room, req.identity)
    if participant is None:
        raise TwirpError("not_found", "participant does not exist")
    return participant


def remove_participant(
    lk: LiveKitStandin, claims: Claims | None, req: room.RoomParticipantIdentity
) -> Message:
    _require_admin(claims, req.room)
    if not lk.leave(req.room, req.identity):
        raise TwirpError("not_found", "participant does not exist")
    return room.RemoveParticipantResponse()


def update_room_metadata(
    lk: LiveKitStandin, claims: Claims | None, req: room.UpdateRoomMetadataRequest
) -> Message:
    _require_admin(claims, req.room)
    with lk.lock:
        state = lk.room_state(req.room)
        if state is None:
            raise TwirpError("not_found", "requested room does not exist")
        state.info.metadata = req.metadata
        return state.view()


# -- AgentDispatchService -------------------------------------------------------------------------


def create_dispatch(
    lk: LiveKitStandin, claims: Claims | None, req: agent_dispatch.CreateAgentDispatchRequest
) -> Message:
    _require_admin(claims, req.room)
    return lk.add_dispatch(req)


def list_dispatch(
    lk: LiveKitStandin, claims: Claims | None, req: agent_dispatch.ListAgentDispatchRequest
) -> Message:
    _require_admin(claims, req.room)
    with lk.lock:
        state = lk.room_state(req.room)
        if state is None:
            raise TwirpError("not_found", "requested room does not exist")
        found = [
            lk.dispatch_view(d)
            for d in state.dispatches.values()
            if not req.dispatch_id or d.id == req.dispatch_id
        ]
    return agent_dispatch.ListAgentDispatchResponse(agent_dispatches=found)


def delete_dispatch(
    lk: LiveKitStandin, claims: Claims | None, req: agent_dispatch.DeleteAgentDispatchRequest
) -> Message:
    _require_admin(claims, req.room)
    return lk.delete_dispatch(req.room, req.dispatch_id)


METHODS: dict[str, Method] = {
    "livekit.RoomService/CreateRoom": Method(room.CreateRoomRequest, create_room),
    "livekit.RoomService/ListRooms": Method(room.ListRoomsRequest, list_rooms),
    "livekit.RoomService/DeleteRoom": Method(room.DeleteRoomRequest, delete_room),
    "livekit.RoomService/ListParticipants": Method(room.ListParticipantsRequest, list_participants),
    "livekit.RoomService/GetParticipant": Method(room.RoomParticipantIdentity, get_participant),
    "livekit.RoomService/RemoveParticipant": Method(
        room.RoomParticipantIdentity, remove_participant
    ),
    "livekit.RoomService/UpdateRoomMetadata": Method(
        room.UpdateRoomMetadataRequest, update_room_metadata
    ),
    "livekit.AgentDispatchService/CreateDispatch": Method(
        agent_dispatch.CreateAgentDispatchRequest, create_dispatch
    ),
    "livekit.AgentDispatchService/ListDispatch": Method(
        agent_dispatch.ListAgentDispatchRequest, list_dispatch
    ),
    "livekit.AgentDispatchService/DeleteDispatch": Method(
        agent_dispatch.DeleteAgentDispatchRequest, delete_dispatch
    ),
}


# -- HTTP -----------------------------------------------------------------------------------------


def _served(error: TwirpError) -> TwirpError:
    return TwirpError(error.code, SERVICE_ERROR + error.msg)


def error_response(error: TwirpError) -> Response:
    return JSONResponse({"code": error.code, "msg": error.msg}, status_code=error.status)


async def handle(lk: LiveKitStandin, request: Request) -> Response:
    started = time.perf_counter()
    service = request.path_params["service"]
    method = request.path_params["method"]
    record = HandledRequest(
        service=service.removeprefix("livekit."),
        method=method,
        identity="",
        grants=None,
        request=None,
    )
    try:
        response = await _answer(lk, request, f"{service}/{method}", record)
    except TwirpError as e:
        record.code, record.msg = e.code, e.msg
        response = error_response(e)
    record.status = response.status_code
    record.seconds = time.perf_counter() - started
    with lk.lock:
        lk.requests.append(record)
    return response


async def _answer(
    lk: LiveKitStandin, request: Request, route: str, record: HandledRequest
) -> Response:
    if request.method != "POST":
        raise TwirpError("bad_route", f"unsupported method {request.method} (only POST is allowed)")
    spec = METHODS.get(route)
    if spec is None:
        raise TwirpError("bad_route", f'no handler for path "/twirp/{route}"')
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/protobuf", "application/json"):
        raise TwirpError("bad_route", f'unexpected Content-Type: "{content_type}"')
    body = await request.body()

    claims: Claims | None = None
    header = request.headers.get("authorization")
    if header:
        if not header.startswith("Bearer "):
            raise TwirpError(
                "unauthenticated", "invalid authorization header. Must start with Bearer "
            )
        try:
            claims = lk.verifier.verify(header.removeprefix("Bearer "))
        except Exception as e:
            raise TwirpError("unauthenticated", f"invalid token: {describe(e)}") from None
        record.identity = claims.identity
        record.grants = claims.video

    message = spec.request()
    try:
        if content_type == "application/json":
            json_format.Parse(body or b"{}", message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(body)
    except Exception as e:
        raise TwirpError("malformed", f"the request could not be decoded: {describe(e)}") from None
    record.request = message

    fault = lk.fault_for(record.method)
    if fault is not None:
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        with lk.lock:
            failure = fault.take_failure()
        if failure is not None:
            raise _served(failure)

    try:
        result = spec.handler(lk, claims, message)
    except TwirpError as e:
        # Grants are checked before the service runs: those keep their own words.
        raise e if e.msg == PERMISSION_DENIED else _served(e) from None
    if content_type == "application/json":
        text = json_format.MessageToJson(
            result,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        return Response(text, media_type="application/json")
    return Response(result.SerializeToString(), media_type="application/protobuf")
