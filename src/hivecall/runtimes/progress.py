"""Reading what a coding CLI is doing from its output, as answer text and progress lines.

Claude Code (`--output-format stream-json --verbose`) and Codex (`exec --json`) print one JSON
event per line: their tool calls become progress ("running pytest", "editing src/app.py") and
their final message the answer. Any other command agent's stdout is its answer, and its last
non-empty line (stdout or stderr) is its progress. Lines are cut short; the caller rate-limits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from hivecall.runtimes.base import Output, Progress

LINE_MAX = 160
PLAIN_MAX = 200_000


def short(text: str, limit: int = LINE_MAX) -> str:
    """One line of at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class OutputReader(Protocol):
    def stdout(self, text: str) -> list[Output]:
        """Feed decoded stdout; return answer pieces and progress in order."""
        ...

    def stderr_line(self, line: str) -> list[Output]: ...

    def end(self) -> list[Output]:
        """The output is over: what is left (a final answer)."""
        ...


class TextReader:
    """Plain CLIs: stdout is the answer; each finished non-empty line is also progress."""

    def __init__(self) -> None:
        self._partial = ""

    def stdout(self, text: str) -> list[Output]:
        out: list[Output] = [text]
        *done, self._partial = (self._partial + text).split("\n")
        last = next((line for line in reversed(done) if line.strip()), None)
        if last is not None:
            out.append(Progress(short(last)))
        return out

    def stderr_line(self, line: str) -> list[Output]:
        return [Progress(short(line))] if line.strip() else []

    def end(self) -> list[Output]:
        return []


class JsonLinesReader:
    """CLIs that print one JSON event per line; `event` turns one into outputs."""

    def __init__(self, event: Callable[[dict[str, Any]], list[Output]]) -> None:
        self._event = event
        self._partial = ""
        # A CLI too old to print events prints its answer: kept until an event shows up.
        self._plain: list[str] | None = []
        self._plain_chars = 0

    def stdout(self, text: str) -> list[Output]:
        *lines, self._partial = (self._partial + text).split("\n")
        out: list[Output] = []
        for line in lines:
            out += self._line(line)
        return out

    def _line(self, line: str) -> list[Output]:
        if not line.strip():
            return []
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            if self._plain is not None and self._plain_chars < PLAIN_MAX:
                self._plain.append(line + "\n")
                self._plain_chars += len(line) + 1
            return [Progress(short(line))]  # a warning the CLI printed among its events
        self._plain = None
        return self._event(data)

    def stderr_line(self, line: str) -> list[Output]:
        return [Progress(short(line))] if line.strip() else []

    def end(self) -> list[Output]:
        out = self._line(self._partial) if self._partial else []
        if self._plain:  # no event came at all: what it printed is its answer
            out.append("".join(self._plain))
        return out


# -- what a tool call sounds like ------------------------------------------------------------


def tool_line(name: str, args: dict[str, Any]) -> str:
    """Claude Code's tool calls, said the way a person would say them."""
    path = args.get("file_path") or args.get("path") or args.get("notebook_path")
    lowered = name.lower()
    if lowered == "bash" and isinstance(args.get("command"), str):
        return short(f"running {args['command']}")
    if lowered in ("edit", "multiedit", "write", "notebookedit") and path:
        verb = "writing" if lowered == "write" else "editing"
        return short(f"{verb} {path}")
    if lowered == "read" and path:
        return short(f"reading {path}")
    if lowered in ("grep", "glob") and args.get("pattern"):
        return short(f"searching for {args['pattern']}")
    if lowered == "webfetch" and args.get("url"):
        return short(f"fetching {args['url']}")
    if lowered == "websearch" and args.get("query"):
        return short(f"searching the web for {args['query']}")
    if lowered in ("task", "agent"):
        return short(f"asking a helper: {args.get('description') or 'a subtask'}")
    if lowered == "todowrite":
        return "updating its to-do list"
    return short(f"using {name}")


def claude_event(data: dict[str, Any]) -> list[Output]:
    """One line of `claude -p --output-format stream-json --verbose`."""
    kind = data.get("type")
    if kind == "assistant":
        out: list[Output] = []
        content = (data.get("message") or {}).get("content") or []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                raw = block.get("input")
                args: dict[str, Any] = raw if isinstance(raw, dict) else {}
                out.append(Progress(tool_line(str(block.get("name", "a tool")), args)))
            elif block.get("type") == "text" and str(block.get("text", "")).strip():
                out.append(Progress(short(str(block["text"]))))
        return out
    if kind == "result":
        result = data.get("result")
        return [result] if isinstance(result, str) and result.strip() else []
    return []


class CodexEvents:
    """`codex exec --json`: items start and complete; the last agent message is the answer."""

    def __init__(self) -> None:
        self.last_message = ""

    def __call__(self, data: dict[str, Any]) -> list[Output]:
        kind = data.get("type")
        raw = data.get("item")
        item: dict[str, Any] = raw if isinstance(raw, dict) else {}
        what = item.get("type") or item.get("item_type")
        if kind == "item.started" and what == "command_execution":
            return [Progress(short(f"running {item.get('command', 'a command')}"))]
        if kind == "item.completed":
            if what in ("agent_message", "assistant_message"):
                text = str(item.get("text", ""))
                if self.last_message.strip():  # an earlier message was narration
                    first = self.last_message
                    self.last_message = text
                    return [Progress(short(first))]
                self.last_message = text
                return []
            if what == "file_change":
                changes = item.get("changes") or []
                paths = [str(c.get("path")) for c in changes if isinstance(c, dict)]
                return [Progress(short("editing " + ", ".join(paths)))] if paths else []
            if what == "web_search" and item.get("query"):
                return [Progress(short(f"searching the web for {item['query']}"))]
        return []

    def end(self) -> list[Output]:
        return [self.last_message] if self.last_message.strip() else []


class CodexReader(JsonLinesReader):
    def __init__(self) -> None:
        self._codex = CodexEvents()
        super().__init__(self._codex)

    def end(self) -> list[Output]:
        return super().end() + self._codex.end()


READERS: dict[str, Callable[[], OutputReader]] = {
    "text": TextReader,
    "claude-stream-json": lambda: JsonLinesReader(claude_event),
    "codex-json": CodexReader,
}
