"""Remove lines that look like secrets before text leaves the machine (prompts, instructions)."""

from __future__ import annotations

import re

_SECRET_LINE = re.compile(
    r"""
    sk-[A-Za-z0-9_-]{16,}                         # OpenAI-style keys
    | sk-ant-[A-Za-z0-9_-]{16,}                   # Anthropic
    | \bgh[pousr]_[A-Za-z0-9]{20,}                # GitHub tokens
    | \bgithub_pat_[A-Za-z0-9_]{20,}
    | \bxox[abposr]-[A-Za-z0-9-]{10,}             # Slack
    | \bAKIA[0-9A-Z]{16}\b                        # AWS access key id
    | \bAIza[0-9A-Za-z_-]{30,}                    # Google API key
    | \bey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.  # JWTs
    | -----BEGIN[ A-Z]*PRIVATE\ KEY-----
    | \b(?:hc[a-z]|ek)_[A-Za-z0-9_-]{20,}         # hivecall and realtime client tokens
    | (?:api[_-]?key|secret|token|passw(?:or)?d|credential|private[_-]?key)
      ["']?\s*[:=]\s*["']?[^\s"']{6,}             # key = value assignments
    | (?:postgres(?:ql)?|mysql|redis|amqp|mongodb)://[^\s:/]+:[^\s@/]+@  # URL password
    """,
    re.IGNORECASE | re.VERBOSE,
)


def looks_secret(line: str) -> bool:
    return bool(_SECRET_LINE.search(line))


def redact(text: str) -> str:
    """The text without any line that looks like it holds a secret."""
    return "\n".join(line for line in text.splitlines() if not looks_secret(line))
