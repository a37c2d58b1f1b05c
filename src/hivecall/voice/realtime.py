"""OpenAI Realtime: mint a short-lived client secret with the user's key for a browser call.

The user's key stays here: the browser only ever sees the `ek_…` secret, which expires within
`call_secret_ttl` seconds and only opens a Realtime session configured by the hub. OpenAI's
failures become hivecall errors with codes; their messages are never passed on as they are,
since OpenAI's 401 text quotes part of the key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import openai

from hivecall.errors import BadRequest, UpstreamError
from hivecall.settings import Settings
from hivecall.voice.tool import realtime_tools

log = logging.getLogger(__name__)

KEY_MISSING = (
    "no OpenAI key: add yours in the dashboard (Settings → OpenAI key) or set OPENAI_API_KEY "
    "before starting the hub"
)


@dataclass(frozen=True)
class ClientSecret:
    value: str
    expires_at: int
    model: str
    voice: str
    webrtc_url: str

    def public(self) -> dict[str, Any]:
        return {
            "client_secret": self.value,
            "expires_at": self.expires_at,
            "model": self.model,
            "voice": self.voice,
            "webrtc_url": self.webrtc_url,
        }


def session_config(settings: Settings, instructions: str) -> dict[str, Any]:
    """The Realtime session a call runs with (GA shape: audio.input / audio.output)."""
    return {
        "type": "realtime",
        "model": settings.realtime_model,
        "instructions": instructions,
        "audio": {
            "input": {
                "transcription": {"model": settings.realtime_transcribe_model},
                "turn_detection": {"type": "semantic_vad", "eagerness": "auto"},
            },
            "output": {"voice": settings.realtime_voice},
        },
        "tools": realtime_tools(),
        "tool_choice": "auto",
    }


class RealtimeMinter:
    """Mints client secrets; one SDK client is kept per (key, base URL) so minting stays fast."""

    def __init__(self) -> None:
        self._client: openai.AsyncOpenAI | None = None
        self._client_for: tuple[str, str, float] | None = None
        # Clients replaced after a settings change; a request may still be using one.
        self._retired: list[openai.AsyncOpenAI] = []

    def _client_of(self, settings: Settings) -> openai.AsyncOpenAI:
        want = (settings.openai_api_key, settings.openai_base_url, settings.openai_timeout)
        if self._client is None or self._client_for != want:
            if self._client is not None:
                self._retired.append(self._client)
            self._client = _new_client(settings)
            self._client_for = want
        return self._client

    async def mint(self, settings: Settings, instructions: str) -> ClientSecret:
        if not settings.openai_api_key:
            raise BadRequest(KEY_MISSING, code="openai_key_missing")
        return await self._mint(self._client_of(settings), settings, instructions)

    async def check(self, settings: Settings) -> None:
        """Mint a throwaway secret with a client of its own (a key being tested is not kept)."""
        if not settings.openai_api_key:
            raise BadRequest(KEY_MISSING, code="openai_key_missing")
        async with _new_client(settings) as client:
            await self._mint(client, settings, "A connection test; say nothing.")

    async def _mint(
        self, client: openai.AsyncOpenAI, settings: Settings, instructions: str
    ) -> ClientSecret:
        try:
            # The session goes as a ready JSON body: the SDK's typed-params transform walks
            # every key of it (a millisecond per call for the instructions and the tool).
            made = await client.realtime.client_secrets.create(
                expires_after={"anchor": "created_at", "seconds": settings.call_secret_ttl},
                extra_body={"session": session_config(settings, instructions)},
            )
        except openai.APIError as e:
            raise _explain(e) from None
        return ClientSecret(
            value=made.value,
            expires_at=made.expires_at,
            model=settings.realtime_model,
            voice=settings.realtime_voice,
            webrtc_url=settings.openai_base_url.rstrip("/"),
        )

    async def aclose(self) -> None:
        for client in [*self._retired, *([self._client] if self._client else [])]:
            await client.close()
        self._client = None
        self._retired.clear()


def _new_client(settings: Settings) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=settings.openai_timeout,
        max_retries=0,
    )


def _explain(e: openai.APIError) -> UpstreamError:
    """OpenAI's failure as a hivecall error. `from None` above keeps the SDK's text (which can
    quote the key) out of tracebacks and logs."""
    status = getattr(e, "status_code", None)
    log.warning("openai refused to mint a call", extra={"status": status, "type": type(e).__name__})
    if isinstance(e, openai.APITimeoutError):
        return UpstreamError(
            "OpenAI did not answer in time; try again", code="openai_timeout", status=504
        )
    if isinstance(e, openai.APIConnectionError):
        return UpstreamError(
            "cannot reach OpenAI (network or base URL); check the connection and "
            "HIVECALL_OPENAI_BASE_URL",
            code="openai_unreachable",
        )
    if status == 401:
        return UpstreamError(
            "OpenAI rejected the key (401); replace it in Settings → OpenAI key",
            code="openai_key_rejected",
        )
    if status == 403:
        return UpstreamError(
            "this OpenAI key may not use the Realtime API (403); check the project's permissions",
            code="openai_forbidden",
        )
    if status == 429:
        return UpstreamError(
            "OpenAI is rate limiting this key or it is out of quota (429); try again shortly",
            code="openai_rate_limited",
            status=429,
        )
    if status is not None and status >= 500:
        return UpstreamError(
            f"OpenAI is having trouble ({status}); try again shortly", code="openai_unavailable"
        )
    return UpstreamError(
        f"OpenAI refused the call's session ({status}); check the Realtime model and voice "
        "in Settings",
        code="openai_rejected",
    )
