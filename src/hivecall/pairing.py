"""Pairing phones: short single-use codes the owner hands out, traded for device tokens.

The owner makes a code (dashboard Phone panel, `POST /api/pairing`, `hivecall pair`); it is
shown as text and as a QR code of `{public_url}/m#pair=CODE` and lives `pairing_code_ttl`
seconds. The phone sends it to `POST /api/pairing/claim` (no token needed) and gets a device
token once: a token of kind `device` with the scopes `agents:read` and `calls`, whose subject is
the device's id. Codes and tokens are stored as SHA-256 hashes only. Codes travel in the URL's
fragment (`#pair=…`), which browsers never send to a server, so they stay out of access logs.

Wrong codes are limited per source address (FAILURES in WINDOW seconds, then 429 with
Retry-After; the address is the connection's peer unless a trusted proxy forwarded it, and a
claim counts from its start, so parallel guesses do not slip past), so nobody can walk the code
space; a code is 8 characters of Crockford's base32 (40 bits) and works once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import segno
from sqlalchemy import select, update

from hivecall import listening, tls
from hivecall.auth import Tokens
from hivecall.calls import TERMINAL, Calls
from hivecall.errors import BadRequest, Conflict, HivecallError, NotFound
from hivecall.ratelimit import Limiter
from hivecall.settings import Settings
from hivecall.store import Store
from hivecall.store.models import Call, PairingCode, Token

# Crockford's base32: no I, L, O or U, so a code read aloud or typed on a phone is unambiguous.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
DEVICE_KIND = "device"
DEVICE_SCOPES = ("agents:read", "calls")
# Failed claims allowed per source address within WINDOW seconds.
FAILURES = 5
WINDOW = 60.0
# What people may type for a letter the alphabet leaves out.
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = re.compile(r"[\s\-_.]+")


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def shown(code: str) -> str:
    """How people see a code: ABCD-EFGH."""
    return f"{code[:4]}-{code[4:]}"


def normalize(raw: str) -> str | None:
    """A typed code as stored (upper case, no separators), or None if it cannot be one."""
    code = _SEPARATORS.sub("", raw).upper().translate(_LOOKALIKES)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def code_hash(code: str) -> str:
    return hashlib.sha256(f"pairing:{code}".encode()).hexdigest()


def pair_url(public_url: str, code: str) -> str:
    """What the QR code holds: the mobile app, told the code in the fragment."""
    return f"{public_url.rstrip('/')}/m#pair={code}"


def qr_svg(url: str, title: str = "Pairing QR code") -> str:
    """The QR code of `url` as an inline SVG (dark on white, with its quiet zone)."""
    qr = segno.make(url, error="m")
    svg: str = qr.svg_inline(
        scale=1, dark="#000", light="#fff", omitsize=True, svgclass="qr", title=title
    )
    return svg


def qr_terminal(url: str) -> str:
    """The QR code of `url` drawn with block characters, for a terminal."""
    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def is_loopback(url: str) -> bool:
    return listening.is_loopback(urlsplit(url).hostname or "")


HTTPS_HOW = "run the hub with `hivecall serve --https --host 0.0.0.0`"


def lan_hint(public_url: str) -> str | None:
    """What to change when phones cannot reach the URL in the QR code, or cannot use the
    microphone there (plain HTTP off loopback), or None."""
    port = urlsplit(public_url).port or 8765
    if is_loopback(public_url):
        return (
            f"{public_url} is this computer's own loopback address: a phone cannot reach it. "
            f"To pair a phone, {HTTPS_HOW} (or set HIVECALL_PUBLIC_URL to an HTTPS address "
            "that reaches it), then make a new code."
        )
    if urlsplit(public_url).scheme == "http":
        return (
            f"{public_url} is plain HTTP, where a phone's browser gives no microphone: calls "
            f"will be speaker-only. For two-way calls {HTTPS_HOW} (the phone trusts the hub's "
            f"certificate once; port {port} stays the same), then make a new code."
        )
    return None


@dataclass(frozen=True)
class TrustStep:
    """Before pairing over the hub's own HTTPS, the phone installs and trusts its CA."""

    ca_url: str
    fingerprint: str

    def public(self) -> dict[str, str]:
        return {
            "ca_url": self.ca_url,
            "ca_qr_svg": qr_svg(self.ca_url, "CA certificate QR code"),
            "fingerprint": self.fingerprint,
        }


def trust_step(settings: Settings, public_url: str) -> TrustStep | None:
    """The CA step when the hub serves HTTPS with its own CA (not with the user's tls_cert)."""
    if settings.tls_cert or not public_url.startswith("https://"):
        return None
    cert = tls.inspect(settings)
    if cert is None or cert.ca is None:
        return None
    return TrustStep(f"{public_url}/ca.crt", tls.fingerprint(cert.ca))


def device_name(raw: str) -> str:
    """A device name people gave: printable, single-spaced, at most 64 characters."""
    cleaned = "".join(c for c in raw if unicodedata.category(c)[0] != "C")
    return " ".join(cleaned.split())[:64]


@dataclass(frozen=True)
class NewCode:
    """A code just made: its plain value exists only here, to show once."""

    id: str
    code: str
    url: str
    expires_at: datetime
    ttl: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": shown(self.code),
            "url": self.url,
            "expires_at": self.expires_at.isoformat(),
            "expires_in": self.ttl,
        }


@dataclass(frozen=True)
class Device:
    """A paired phone as people see it: never its token or hash."""

    id: str
    name: str
    token_id: str
    paired_at: datetime
    last_seen_at: datetime | None

    @classmethod
    def of(cls, row: Token) -> Device:
        return cls(row.subject or row.id, row.name, row.id, row.created_at, row.last_used_at)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "paired_at": self.paired_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat() if self.last_seen_at else None,
        }


class Pairing:
    def __init__(self, *, store: Store, tokens: Tokens, calls: Calls) -> None:
        self._store = store
        self._tokens = tokens
        self._calls = calls
        self.limiter = Limiter(
            limit=FAILURES,
            window=WINDOW,
            message="too many wrong pairing codes from this address: wait a minute and try again",
            code="pairing_rate_limited",
        )

    # -- codes ----------------------------------------------------------------------------

    async def create(self, *, ttl: int, public_url: str, created_by: str = "") -> NewCode:
        code = new_code()
        now = datetime.now(UTC)
        row = PairingCode(
            id=f"pair_{uuid.uuid4().hex[:24]}",
            code_hash=code_hash(code),
            created_by=created_by,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
        async with self._store.session() as s, s.begin():
            s.add(row)
        return NewCode(row.id, code, pair_url(public_url, code), row.expires_at, ttl)

    async def status(self, code_id: str) -> dict[str, Any]:
        """Whether a code is still waiting, paired a device, or expired (for the dashboard)."""
        async with self._store.session() as s:
            row = await s.get(PairingCode, code_id)
        if row is None:
            raise NotFound("no such pairing code", code="pairing_not_found")
        device = None
        if row.used_at is not None:
            state = "paired"
            found = await self._devices(subject=row.device_id, live=False)
            device = found[0].public() if found else None
        elif row.expires_at <= datetime.now(UTC):
            state = "expired"
        else:
            state = "waiting"
        return {
            "id": row.id,
            "state": state,
            "expires_at": row.expires_at.isoformat(),
            "device": device,
        }

    async def claim(self, raw_code: str, name: str, *, source: str) -> tuple[str, Device]:
        """Trade a code for a device token (returned once). Failures count against `source`:
        every claim counts from its start, and one that pairs is taken back."""
        mark = self.limiter.begin(source)
        failed = False
        try:
            return await self._claim(raw_code, name)
        except HivecallError:
            failed = True
            raise
        finally:
            if not failed:
                self.limiter.forgive(source, mark)

    async def _claim(self, raw_code: str, name: str) -> tuple[str, Device]:
        code = normalize(raw_code)
        async with self._store.session() as s:
            row = (
                await s.scalar(select(PairingCode).where(PairingCode.code_hash == code_hash(code)))
                if code
                else None
            )
        if row is None:
            raise BadRequest(
                "that pairing code is not right: check it, or make a new one on the hub",
                code="pairing_code_invalid",
            )
        if row.used_at is not None:
            raise _gone("that pairing code was already used: make a new one", "pairing_code_used")
        now = datetime.now(UTC)
        if row.expires_at <= now:
            raise _gone("that pairing code has expired: make a new one", "pairing_code_expired")
        device_id = f"dev_{uuid.uuid4().hex[:16]}"
        async with self._store.session() as s, s.begin():
            result = await s.execute(
                update(PairingCode)
                .where(PairingCode.id == row.id, PairingCode.used_at.is_(None))
                .values(used_at=now, device_id=device_id)
            )
        if not getattr(result, "rowcount", 0):  # another phone claimed it a moment earlier
            raise _gone("that pairing code was already used: make a new one", "pairing_code_used")
        value, token = await self._tokens.create(
            kind=DEVICE_KIND,
            scopes=DEVICE_SCOPES,
            name=await self._unique_name(device_name(name) or "Phone"),
            subject=device_id,
        )
        return value, Device.of(token)

    async def _unique_name(self, name: str) -> str:
        taken = {d.name for d in await self.devices()}
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            suffix = f" ({n})"
            candidate = name[: 64 - len(suffix)] + suffix
        return candidate

    # -- devices --------------------------------------------------------------------------

    async def devices(self) -> list[Device]:
        """Paired devices (live tokens), oldest first."""
        return await self._devices()

    async def _devices(self, *, subject: str | None = None, live: bool = True) -> list[Device]:
        q = select(Token).where(Token.kind == DEVICE_KIND).order_by(Token.created_at, Token.id)
        if live:
            q = q.where(Token.revoked_at.is_(None))
        if subject is not None:
            q = q.where(Token.subject == subject)
        async with self._store.session() as s:
            return [Device.of(row) for row in await s.scalars(q)]

    async def find(self, ref: str) -> Device:
        """A paired device by id or by name."""
        devices = await self.devices()
        by_id = [d for d in devices if ref in (d.id, d.token_id)]
        found = by_id or [d for d in devices if d.name == ref]
        if not found:
            raise NotFound(f"no paired device {ref!r}", code="device_not_found")
        if len(found) > 1:
            raise Conflict(
                f"several devices are called {ref!r}: revoke one by its id", code="device_ambiguous"
            )
        return found[0]

    async def revoke(self, ref: str) -> Device:
        """Unpair a device: its token fails at once here (elsewhere within 2 s), and its
        unfinished calls are marked failed."""
        device = await self.find(ref)
        await self._tokens.revoke(device.token_id)
        async with self._store.session() as s:
            open_calls = list(
                await s.scalars(
                    select(Call).where(
                        Call.started_by == device.token_id, Call.state.not_in(TERMINAL)
                    )
                )
            )
        for call in open_calls:
            with contextlib.suppress(Conflict):  # it ended meanwhile
                await self._calls.advance(
                    call, "failed", error=("device_revoked", "the phone was unpaired")
                )
        return device


def _gone(message: str, code: str) -> HivecallError:
    return HivecallError(message, code=code, status=410)
