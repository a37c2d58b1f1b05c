"""Lines that look like secrets never leave the machine in context."""

from __future__ import annotations

import pytest

from hivecall.agents.redact import redact


@pytest.mark.parametrize(
    "line",
    [
        "OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz",
        "token: ghp_abcdefghijklmnopqrstuvwxyz0123",
        "aws AKIAABCDEFGHIJKLMNOP",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        'password = "hunter2hunter2"',
        "DATABASE_URL=postgresql://app:s3cretpw@db/app",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
        "slack xoxb-1234567890-abcdefghij",
    ],
)
def test_secret_lines_are_removed(line: str) -> None:
    assert redact(f"before\n{line}\nafter") == "before\nafter"


def test_ordinary_lines_stay() -> None:
    text = "The token bucket refills.\nPasswords are hashed with argon2.\nskip-tests is off"
    assert redact(text) == text
