"""Remove lines that look like secrets before text leaves the machine (prompts, instructions)."""

from __future__ import annotations

import re

# Words that make an assignment's value a secret: `aws_secret_access_key = …`,
# `export GITHUB_TOKEN=…`, `"clientSecret": "…"`, `password: …`, `Authorization: Basic …`.
_CREDENTIAL_WORDS = r"""
    (?:secret|token|passw(?:or)?d|pwd|api[_-]?key|access[_-]?key|private[_-]?key
      |credentials?|authorization|auth\b|session[_-]?key|signing[_-]?key)
"""

_SECRET_LINE = re.compile(
    rf"""
    sk-[A-Za-z0-9_-]{{16,}}                       # OpenAI-style keys (Anthropic's sk-ant- too)
    | \b[rs]k_(?:live|test)_[A-Za-z0-9]{{16,}}    # Stripe
    | \bgh[pousr]_[A-Za-z0-9]{{20,}}              # GitHub tokens
    | \bgithub_pat_[A-Za-z0-9_]{{20,}}
    | \bglpat-[A-Za-z0-9_-]{{20,}}                # GitLab
    | \bxox[abposr]-[A-Za-z0-9-]{{10,}}           # Slack
    | \b(?:AKIA|ASIA)[0-9A-Z]{{16}}\b             # AWS access key ids (long-lived, session)
    | \bAIza[0-9A-Za-z_-]{{30,}}                  # Google API key
    | \bya29\.[0-9A-Za-z_-]{{20,}}                # Google OAuth access token
    | \bhf_[A-Za-z0-9]{{30,}}                     # Hugging Face
    | \bnpm_[A-Za-z0-9]{{30,}}                    # npm
    | \bpypi-[A-Za-z0-9_-]{{50,}}                 # PyPI
    | \bey[A-Za-z0-9_-]{{10,}}\.ey[A-Za-z0-9_-]{{10,}}\.  # JWTs
    | -----BEGIN[ A-Z0-9]*PRIVATE\ KEY
    | \b(?:hc[a-z]|ek)_[A-Za-z0-9_-]{{20,}}       # hivecall and realtime client tokens
    | (?<![\w.-])[\w.-]{{0,60}}?{_CREDENTIAL_WORDS}[\w.-]{{0,60}}?  # key = value assignments
      ["']?\s*[:=]\s*["']?[^\s"']{{6,}}           # (bounded: no quadratic backtracking)
    | \bbearer\s+[A-Za-z0-9._~+/-]{{12,}}         # a bearer token wherever it is written
    | authorization["']?\s*[:=]\s*["']?\w+\s+\S{{8,}}  # Authorization: Basic …, Digest …
    | ^\s*(?:machine\s+\S+|default)\b.*\b(?:password|account)\s+\S+  # .netrc entries
    | ^\s*(?:login\s+\S+\s+)?(?:password|passwd)\s+\S+  # .netrc, a token a line
    | ^[^\s:]+:(?:\d+|\*):[^\s:]+:[^\s:]+:\S+$    # .pgpass: host:port:db:user:password
    | \b[a-z][a-z0-9+.-]{{0,30}}://[^\s:/@]+:[^\s@/]+@  # URL with a password
    """,
    re.IGNORECASE | re.VERBOSE | re.MULTILINE,
)

# A PEM private key's body lines look like nothing in particular: everything from its BEGIN line
# to its END line goes (to the end of the text when the END line is missing).
_KEY_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9]*PRIVATE KEY[ A-Z]*-----")
_KEY_END = re.compile(r"-----END[ A-Z0-9]*PRIVATE KEY[ A-Z]*-----")


def looks_secret(line: str) -> bool:
    return bool(_SECRET_LINE.search(line))


def redact(text: str) -> str:
    """The text without any line that looks like it holds a secret, nor any private key block."""
    kept: list[str] = []
    in_key = False
    for line in text.splitlines():
        if in_key:
            in_key = not _KEY_END.search(line)
        elif begin := _KEY_BEGIN.search(line):
            in_key = not _KEY_END.search(line, begin.end())
        elif not looks_secret(line):
            kept.append(line)
    return "\n".join(kept)
