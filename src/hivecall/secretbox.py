"""Secrets at rest: sealed with AES-GCM under a key file that lives in HIVECALL_HOME.

The database can be copied, backed up or pointed at a shared PostgreSQL server; the key file
stays on the machine (mode 0600). Sealed values are text: `v1:<nonce+ciphertext, base64url>`.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hivecall.errors import ConfigError

KEY_FILE = "secret.key"
PREFIX = "v1:"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the secret key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def open(cls, home: Path) -> SecretBox:
        """The box for this home, creating its key file on first use."""
        path = home / KEY_FILE
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            home.mkdir(parents=True, exist_ok=True)
            key = os.urandom(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
        if len(key) != 32:
            raise ConfigError(f"{path} is damaged (expected 32 bytes); move it away to start over")
        return cls(key)

    def seal(self, plain: str, *, context: str) -> str:
        """`context` binds the value to its use, so a sealed value cannot be moved elsewhere."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plain.encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def unseal(self, value: str, *, context: str) -> str:
        if not value.startswith(PREFIX):
            raise ConfigError("a stored secret is not sealed in a known format")
        raw = base64.urlsafe_b64decode(value[len(PREFIX) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as e:
            raise ConfigError(
                "a stored secret cannot be opened with this home's secret.key (was it replaced?)"
            ) from e
