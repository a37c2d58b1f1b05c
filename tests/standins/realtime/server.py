"""RealtimeStandin: the HTTP server (client secrets, WebRTC calls) and its records."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.keys import FAKE_OPENAI_KEY
from tests.standins.realtime.media import VoiceTrack, allow_loopback_ice
from tests.standins.realtime.protocol import (
    bad_key,
    bearer,
    default_session,
    http_error,
    merge,
    new_id,
)
from tests.standins.realtime.script import Script, default_script
from tests.standins.realtime.session import RealtimeSession
from tests.standins.threaded import ServerThread

DEFAULT_KEY = FAKE_OPENAI_KEY


@dataclass
class Recorded:
    """One HTTP request the stand-in received (any route)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, the SDP text for calls, or None
    status: int = 0  # the status the stand-in answered with
    seconds: float = 0.0  # time the stand-in spent on it (scripted delays included)


@dataclass
class Secret:
    value: str
    expires_at: int
    session: dict[str, Any]
    request: Any  # the JSON body of the client_secrets request
    uses: int = 0


@dataclass
class Failure:
    status: int
    message: str | None
    code: str | None
    times: int | None  # None: until cleared
    headers: dict[str, str] = field(default_factory=dict)

    def take(self) -> bool:
        if self.times is None:
            return True
        self.times -= 1
        return self.times >= 0


class RealtimeStandin:
    """OpenAI Realtime on 127.0.0.1. `with RealtimeStandin() as rt:` or `start()`/`close()`.

    Scripting (set before the call it should affect):
      `script` (a Script, default_script(); each conversation runs a copy), `mint_delay`,
      `fail_mint(status, ...)`, `fail_calls(status, ...)`, `expire(secret_value)`;
      `hears` / `speaks` (websocket form only, both False by default): later websocket sessions
      run VAD and Whisper on the appended audio, and say their messages with Piper (session.py).
    Records:
      `requests` (every HTTP request), `mints` (client_secrets bodies that succeeded),
      `secrets` (value -> Secret), `mint_seconds` (server time per successful mint),
      `calls` (RealtimeSession per WebRTC call, in order), `sockets` (one per websocket).
    """

    def __init__(self, *, api_key: str = DEFAULT_KEY) -> None:
        self.api_key = api_key
        # What the "model" does in later conversations; set it or change it before they start.
        self.script: Script = default_script()
        self.mint_delay = 0.0
        self.hears = False
        self.speaks = False
        self.requests: list[Recorded] = []
        self.mints: list[Any] = []
        self.mint_seconds: list[float] = []
        self.secrets: dict[str, Secret] = {}
        self.calls: list[RealtimeSession] = []
        self.sockets: list[RealtimeSession] = []
        self._mint_failure: Failure | None = None
        self._call_failure: Failure | None = None
        self._peers: list[RTCPeerConnection] = []
        self._closing = False
        app = Starlette(
            routes=[
                Route("/v1/realtime/client_secrets", self._client_secrets, methods=["POST"]),
                Route("/v1/realtime/calls", self._calls, methods=["POST"]),
                WebSocketRoute("/v1/realtime", self._websocket),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "DELETE"]),
            ],
            middleware=[
                # Browsers POST offers to api.openai.com from their own origin.
                Middleware(
                    CORSMiddleware,
                    allow_origins=["*"],
                    allow_methods=["POST", "GET"],
                    allow_headers=["*"],
                    expose_headers=["location"],
                )
            ],
            lifespan=self._lifespan,
        )
        self.server = ServerThread(
            app, name="realtime-standin", lifespan="on", ws="websockets-sansio"
        )

    # -- scripting --------------------------------------------------------------------------------

    def _script_copy(self) -> Script:
        """Each conversation runs its own copy of `script` (it keeps its place in it)."""
        return dataclasses.replace(self.script, turns=list(self.script.turns))

    def fail_mint(
        self,
        status: int,
        *,
        message: str | None = None,
        code: str | None = None,
        times: int | None = None,
        retry_after_ms: int | None = 1,
    ) -> None:
        """Answer the next `times` client_secrets requests (all if None) with an OpenAI error."""
        headers = {} if retry_after_ms is None else {"retry-after-ms": str(retry_after_ms)}
        self._mint_failure = Failure(status, message, code, times, headers)

    def fail_calls(
        self,
        status: int,
        *,
        message: str | None = None,
        code: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer the next `times` calls requests (all if None) with an OpenAI error."""
        self._call_failure = Failure(status, message, code, times)

    def clear(self) -> None:
        """Forget failures, delays, the script, hearing and speaking; keep the records."""
        self._mint_failure = self._call_failure = None
        self.mint_delay = 0.0
        self.hears = self.speaks = False
        self.script = default_script()

    def expire(self, value: str) -> None:
        """Make a minted secret expired from now on."""
        self.secrets[value].expires_at = int(time.time()) - 1

    # -- reading ----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def origin(self) -> str:
        return self.server.origin

    @property
    def last_call(self) -> RealtimeSession:
        assert self.calls, "no call reached the Realtime stand-in"
        return self.calls[-1]

    async def wait_for_call(self, count: int = 1, timeout: float = 10) -> RealtimeSession:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no call #{count} reached the Realtime stand-in")
            await asyncio.sleep(0.01)
        return self.calls[count - 1]

    def start_turn(self, call: RealtimeSession, turn: Any) -> None:
        """Make the model take a turn now in `call` (thread-safe)."""
        self.server.call_soon(call.start_turn, turn)

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> RealtimeStandin:
        allow_loopback_ice()
        self.server.start()
        return self

    def close(self) -> None:
        self._closing = True
        self.server.close()

    def __enter__(self) -> RealtimeStandin:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        yield
        for call in [*self.calls, *self.sockets]:
            await call.close()
        for pc in self._peers:
            with contextlib.suppress(Exception):
                await pc.close()

    # -- routes -----------------------------------------------------------------------------------

    def _record(self, request: Request, body: Any) -> Recorded:
        record = Recorded(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        self.requests.append(record)
        return record

    async def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._closing and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.02))

    async def _websocket(self, ws: WebSocket) -> None:
        """`GET /v1/realtime?model=…` with the user's key (or a minted secret) as bearer."""
        record = Recorded("GET", ws.url.path, {k.lower(): v for k, v in ws.headers.items()}, None)
        self.requests.append(record)
        key = bearer(ws.headers.get("authorization"))
        secret = self.secrets.get(key or "")
        if key != self.api_key and (secret is None or secret.expires_at <= time.time()):
            record.status = 401
            await ws.send_denial_response(bad_key(key))
            return
        model = ws.query_params.get("model")
        if secret is not None:
            session = copy.deepcopy(secret.session)
        else:
            session = merge(default_session(), {"id": new_id("sess"), "expires_at": 0})
            if model:
                session["model"] = model
        record.status = 101
        await ws.accept()

        async def send(text: str) -> None:
            await ws.send_text(text)

        conversation = RealtimeSession(
            session=session,
            script=self._script_copy(),
            send=send,
            webrtc=False,
            hears=self.hears,
            speaks=self.speaks,
        )
        self.sockets.append(conversation)
        conversation.connection_state = "connected"
        await conversation.open()
        try:
            while True:
                await conversation.receive(await ws.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            conversation.connection_state = "closed"
            await conversation.close()

    async def _unknown(self, request: Request) -> Response:
        self._record(request, None).status = 404
        return http_error(
            404,
            f"Invalid URL ({request.method} {request.url.path})",
            type="invalid_request_error",
            code=None,
        )

    async def _client_secrets(self, request: Request) -> Response:
        started = time.perf_counter()
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = self._record(request, body)
        response = await self._mint(request, body)
        record.status = response.status_code
        record.seconds = time.perf_counter() - started
        if response.status_code == 200:
            self.mint_seconds.append(record.seconds)
        return response

    async def _mint(self, request: Request, body: Any) -> Response:
        if self.mint_delay:
            await self._pause(self.mint_delay)
        key = bearer(request.headers.get("authorization"))
        if key != self.api_key:
            return bad_key(key)
        failure = self._mint_failure
        if failure is not None and failure.take():
            return http_error(
                failure.status, failure.message, code=failure.code, headers=failure.headers
            )
        if not isinstance(body, dict):
            return http_error(400, "We could not parse the JSON body of your request.")
        expires = body.get("expires_after") or {}
        seconds = expires.get("seconds", 600) if isinstance(expires, dict) else 600
        if not isinstance(seconds, int) or not 10 <= seconds <= 7200:
            return http_error(
                400,
                f"Invalid 'expires_after.seconds': {seconds}. Expected a value between 10 "
                "and 7200.",
                param="expires_after.seconds",
                code="invalid_value",
            )
        requested = body.get("session") or {"type": "realtime"}
        if not isinstance(requested, dict) or requested.get("type") != "realtime":
            return http_error(
                400,
                "Missing required parameter: 'session.type'."
                if isinstance(requested, dict) and "type" not in requested
                else "Invalid value for 'session.type': expected 'realtime'.",
                param="session.type",
                code="missing_required_parameter",
            )
        expires_at = int(time.time()) + seconds
        session = merge(default_session(), requested)
        session.update(id=new_id("sess"), object="realtime.session", expires_at=0)
        value = new_id("ek")
        self.secrets[value] = Secret(value, expires_at, session, body)
        self.mints.append(body)
        return JSONResponse({"value": value, "expires_at": expires_at, "session": session})

    async def _calls(self, request: Request) -> Response:
        started = time.perf_counter()
        sdp = (await request.body()).decode("utf-8", "replace")
        record = self._record(request, sdp)
        response = await self._answer(request, sdp)
        record.status = response.status_code
        record.seconds = time.perf_counter() - started
        return response

    async def _answer(self, request: Request, offer: str) -> Response:
        key = bearer(request.headers.get("authorization"))
        secret = self.secrets.get(key or "")
        if secret is None:
            return bad_key(key)
        if secret.expires_at <= time.time():
            return http_error(401, "The client secret has expired.", code="invalid_api_key")
        failure = self._call_failure
        if failure is not None and failure.take():
            return http_error(failure.status, failure.message, code=failure.code)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/sdp":
            return http_error(
                400,
                f"Unsupported content type: '{content_type}'. This API method only accepts "
                "'application/sdp' requests.",
                code="unsupported_content_type",
            )
        if "m=" not in offer:
            return http_error(400, "Invalid SDP offer.", code="invalid_offer")
        secret.uses += 1
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._peers.append(pc)
        voice = VoiceTrack()
        holder: dict[str, RealtimeSession] = {}

        async def send(text: str) -> None:
            channel = holder.get("channel")
            if isinstance(channel, RTCDataChannel) and channel.readyState == "open":
                channel.send(text)

        call = RealtimeSession(
            session=copy.deepcopy(secret.session),
            script=self._script_copy(),
            send=send,
            webrtc=True,
            voice=voice,
        )
        self.calls.append(call)
        self._wire(pc, call, holder)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":
                    pc.addTrack(voice)
                    break
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as e:
            call.connection_state = "failed"
            await pc.close()
            return http_error(400, f"Invalid SDP offer: {e}", code="invalid_offer")
        return Response(
            pc.localDescription.sdp,
            status_code=201,
            media_type="application/sdp",
            headers={"location": f"/v1/realtime/calls/{call.id}"},
        )

    def _wire(self, pc: RTCPeerConnection, call: RealtimeSession, holder: dict[str, Any]) -> None:
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def reader() -> None:
            await call.open()
            while (text := await queue.get()) is not None:
                await call.receive(text)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                call.audio.consume(track)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label != "oai-events" or "channel" in holder:
                return
            holder["channel"] = channel
            holder["reader"] = asyncio.ensure_future(reader())

            @channel.on("message")
            def on_message(message: str | bytes) -> None:
                queue.put_nowait(message if isinstance(message, str) else message.decode())

            @channel.on("close")
            def on_close() -> None:
                queue.put_nowait(None)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            call.connection_state = pc.connectionState
            if pc.connectionState in ("failed", "closed"):
                queue.put_nowait(None)
                await call.close()
                await pc.close()


def serve() -> Iterator[RealtimeStandin]:
    """A started stand-in, closed afterwards (the body of a pytest fixture)."""
    with RealtimeStandin() as standin:
        yield standin
