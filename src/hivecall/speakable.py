"""Turn an agent's written answer (often markdown) into text a voice can say.

Code blocks are summarised, markup is dropped, lists become sentences, URLs become their host,
and the result is cut at a sentence boundary when it runs long.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"https?://([^/\s)]+)[^\s)]*")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+", re.MULTILINE)
_QUOTE = re.compile(r"^\s*>\s?", re.MULTILINE)
_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*\*|__|\*|~~)(?=\S)(.+?)(?<=\S)\1")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)")

CUT_NOTE = " That's the short version; the full answer is in the turn log."


def _code_summary(m: re.Match[str]) -> str:
    lang = m.group(1).strip()
    lines = len([line for line in m.group(2).splitlines() if line.strip()])
    what = f"{lang} code" if lang else "code"
    noun = "line" if lines == 1 else "lines"
    return f"\n(There's a block of {what} here, {lines} {noun}, that I won't read out.)\n"


def _table_row(line: str) -> str:
    if line.count("|") < 2:
        return line
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return ", ".join(c for c in cells if c) + "."


def _sentence(line: str) -> str:
    line = line.strip()
    if line and line[-1] not in ".!?:;,…)":
        line += "."
    return line


def speakable(text: str, *, max_chars: int = 900) -> str:
    out = _FENCE.sub(_code_summary, text.replace("\r\n", "\n"))
    out = _TABLE_SEP.sub("", out)
    out = "\n".join(_table_row(line) for line in out.split("\n"))
    out = _IMAGE.sub(lambda m: m.group(1), out)
    out = _LINK.sub(lambda m: m.group(1), out)
    out = _URL.sub(lambda m: f"a link to {m.group(1)}", out)
    out = _INLINE_CODE.sub(lambda m: m.group(1), out)
    out = _RULE.sub("", out)
    out = _HEADING.sub("", out)
    out = _QUOTE.sub("", out)
    had_list = bool(_BULLET.search(out))
    out = _BULLET.sub("", out)
    out = _EMPHASIS.sub(lambda m: m.group(2), out)
    lines = [line.strip() for line in out.split("\n") if line.strip()]
    if had_list or len(lines) > 1:
        lines = [_sentence(line) for line in lines]
    spoken = re.sub(r"\s+", " ", " ".join(lines)).strip()
    return _cut(spoken, max_chars)


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    room = max(max_chars - len(CUT_NOTE), 40)
    head = text[:room]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] > room // 3:
        head = head[: ends[-1]]
    else:
        head = head[: head.rfind(" ")].rstrip(",;:") + "…" if " " in head else head
    return head + CUT_NOTE
