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
        'password = "hunter2hunter2"',
        "DATABASE_URL=postgresql://app:s3cretpw@db/app",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
        "slack xoxb-1234567890-abcdefghij",
        # ~/.aws/credentials and the like
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_session_token=IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ",
        "aws_access_key_id = ASIAIOSFODNN7EXAMPLE",
        # shell profiles and .env files
        "export GITHUB_TOKEN=abcdef0123456789abcdef",
        "export DJANGO_SECRET_KEY='django-insecure-0123456789'",
        'MY_SERVICE_PASSWORD="correct horse"',
        '  "clientSecret": "0123456789abcdef",',
        "//registry.npmjs.org/:_authToken=npm_0123456789abcdefghijklmnopqrstuvwxyz",
        '      "auth": "YWxpY2U6czNjcjN0cGFzcw=="',  # ~/.docker/config.json
        # ~/.netrc, on one line or one token a line
        "machine api.example.com login alice password s3cr3tpass",
        "machine example.com password s3cr3tpass login alice",
        "default login anonymous password me@example.com",
        "password s3cr3tpass",
        "  login alice password s3cr3tpass",
        # ~/.pgpass
        "db.example.com:5432:app:alice:s3cr3tpass",
        # headers and URLs
        "Authorization: Basic YWxpY2U6czNjcjN0cGFzcw==",
        "curl -H 'Authorization: Bearer abcdef0123456789abcdef' https://api.example.com",
        "git remote add origin https://alice:ghtoken0123456789@github.com/a/b.git",
        "stripe sk_live_0123456789abcdefghij",
        "gitlab glpat-0123456789abcdefghij",
    ],
)
def test_secret_lines_are_removed(line: str) -> None:
    assert redact(f"before\n{line}\nafter") == "before\nafter"


@pytest.mark.parametrize(
    "kind", ["OPENSSH PRIVATE KEY", "RSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK"]
)
def test_a_private_key_block_goes_whole(kind: str) -> None:
    body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQ=="
    text = f"before\n-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\nafter"
    assert redact(text) == "before\nafter"


def test_a_private_key_cut_short_takes_the_rest_with_it() -> None:
    # A memory file read only in part can end inside a key: none of its body may stay.
    text = "before\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUA"
    assert redact(text) == "before"


def test_ordinary_lines_stay() -> None:
    text = (
        "The token bucket refills.\nPasswords are hashed with argon2.\nskip-tests is off\n"
        "max_tokens = 4096\nLog in with your password at https://example.com/login\n"
        "author: somebody-else\nauth_url = https://example.com/callback\n"
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b\n"
        "-----BEGIN PUBLIC KEY-----\nThe machine learning model logs in daily."
    )
    assert redact(text) == text
