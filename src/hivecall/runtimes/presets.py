"""How each known coding CLI takes one non-interactive turn, and how it resumes a session.

`{message}` marks the argv element that carries the request; `{session}` is a stable UUID per
(agent, caller, hivecall session), for CLIs that can name or resume their own sessions.

The message never stands where a CLI would read it as an option: it comes after `--` (end of
options) or glued to its option (`--message=…`), so "--dangerously-skip-permissions" spoken or
typed is a request, not a flag. Session options are put before it (command.build_argv).
"""

from __future__ import annotations

from dataclasses import dataclass

# Every preset is an agent of this runtime kind, with the preset's argv as its command.
PRESET_KIND = "command"


@dataclass(frozen=True)
class Preset:
    name: str
    argv: tuple[str, ...]
    first: tuple[str, ...] = ()  # added on the first turn of a session
    resume: tuple[str, ...] = ()  # added on later turns of the same session
    label: str = ""
    # How its output reads (runtimes/progress.py), and the options that make it print that.
    output: str = "text"
    structured: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "claude",
            ("claude", "-p", "--", "{message}"),
            first=("--session-id", "{session}"),
            resume=("--resume", "{session}"),
            label="Claude Code",
            output="claude-stream-json",
            structured=("--output-format", "stream-json", "--verbose"),
        ),
        Preset(
            "codex",
            ("codex", "exec", "--", "{message}"),
            label="Codex",
            output="codex-json",
            structured=("--json",),
        ),
        Preset(
            "aider",
            ("aider", "--yes-always", "--no-pretty", "--no-stream", "--message={message}"),
            resume=("--restore-chat-history",),
            label="Aider",
        ),
        Preset(
            "opencode",
            ("opencode", "run", "--", "{message}"),
            resume=("--continue",),
            label="OpenCode",
        ),
        Preset(
            "goose",
            ("goose", "run", "--text={message}"),
            first=("--name", "{session}"),
            resume=("--name", "{session}", "--resume"),
            label="Goose",
        ),
        Preset("gemini", ("gemini", "--prompt={message}"), label="Gemini CLI"),
    )
}
