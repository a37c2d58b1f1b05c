"""The command runtime: one CLI agent process per turn, run in the agent's workspace.

The template is split like a shell would split it (shlex) but never run through a shell: the
argv element holding `{message}` carries the request verbatim; with no placeholder the request
goes to stdin. Each turn runs in its own process group so a timeout or a hub shutdown kills the
agent and everything it started.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hivecall.errors import BadRequest, RuntimeFailure
from hivecall.runtimes.base import Output, TurnInput, timeout_failure
from hivecall.runtimes.environment import agent_environment
from hivecall.runtimes.presets import PRESETS
from hivecall.runtimes.progress import READERS, OutputReader

if TYPE_CHECKING:
    from hivecall.agents.records import AgentRecord

log = logging.getLogger(__name__)

PLACEHOLDER = "{message}"
SESSION = "{session}"
KILL_GRACE = 2.0
SESSION_NS = uuid.UUID("6f1c3c1e-2f5e-4d7e-9b1a-7c0d5e3a9f10")
OWNER_CALLER = "owner"


def session_uuid(agent_id: str, session_id: str) -> str:
    """A stable UUID for a hivecall session on one agent (CLIs such as claude want UUIDs)."""
    return str(uuid.uuid5(SESSION_NS, f"{agent_id}:{session_id}"))


def session_uuid_for(agent_id: str, session_id: str, caller: str) -> str:
    """The CLI session of one caller's session: two callers who both say "default" get two.

    The owner's sessions keep the UUIDs they always had, so their CLI sessions resume."""
    if caller == OWNER_CALLER:
        return session_uuid(agent_id, session_id)
    return session_uuid(agent_id, f"{caller}\n{session_id}")


def build_argv(
    template: Sequence[str], preset: str | None, turn: TurnInput
) -> tuple[list[str], bool]:
    """The argv for one turn, and whether the message goes to stdin instead.

    A preset's session options go before the message, which its CLI takes after `--` or as
    `--opt=MESSAGE`, so a message that starts with "-" is never read as an option. In a
    template of the user's own, a whole-argument `{message}` that starts with "-" gets a
    leading space, for the same reason (what the user's program reads is still the request).
    """
    argv = list(template)
    if preset and preset in PRESETS:
        p = PRESETS[preset]
        extra = list(p.resume if turn.resumed else p.first)
        if not any(a in argv for a in p.structured):
            extra += p.structured
        at = next((i for i, a in enumerate(argv) if PLACEHOLDER in a), len(argv))
        if at > 0 and argv[at - 1] == "--":
            at -= 1
        argv[at:at] = extra
    session = session_uuid_for(turn.agent.id, turn.session_id, turn.caller)
    has_placeholder = any(PLACEHOLDER in a for a in argv)
    message = turn.message
    out = [a.replace(SESSION, session) for a in argv]
    for i, a in enumerate(out):
        if PLACEHOLDER not in a:
            continue
        bare = a == PLACEHOLDER and (i == 0 or out[i - 1] != "--")
        out[i] = (
            " " + message if bare and message.startswith("-") else a.replace(PLACEHOLDER, message)
        )
    return out, not has_placeholder


def output_mode(template: Sequence[str], preset: str | None) -> str:
    """How the agent's output reads: its preset's structured form (which build_argv asks for,
    unless the template chose output options of its own), else plain text."""
    p = PRESETS.get(preset or "")
    if p is None or not p.structured:
        return "text"
    if any(a in template for a in p.structured) and not all(a in template for a in p.structured):
        return "text"  # the user's own output options: read them as plain text
    return p.output


def executable_missing(argv0: str, workspace: str | None, search_path: str | None) -> bool:
    """Whether argv0 cannot be run: looked up on `search_path`, the PATH agents are started with."""
    if os.sep in argv0:
        path = Path(argv0)
        if not path.is_absolute() and workspace:
            path = Path(workspace) / path
        return not (path.is_file() and os.access(path, os.X_OK))
    return shutil.which(argv0, path=search_path) is None


class CommandRuntime:
    exclusive = True
    wants_context = False
    resumes_sessions = True
    runs_command = True

    @staticmethod
    def check(fields: Mapping[str, Any], search_path: str | None) -> None:
        command: Sequence[str] = fields.get("command") or ()
        if not command:
            raise BadRequest(
                'a command agent needs --command (e.g. "python3 agent.py {message}") or a '
                f"preset runtime ({', '.join(PRESETS)})",
                code="invalid_command",
            )
        if executable_missing(command[0], fields.get("workspace"), search_path):
            raise BadRequest(
                f"command {command[0]!r} was not found on PATH", code="command_not_found"
            )
        if sum(PLACEHOLDER in a for a in command) > 1:
            raise BadRequest(f"only one argument may hold {PLACEHOLDER}", code="invalid_command")

    @staticmethod
    def problem(agent: AgentRecord, search_path: str | None) -> str | None:
        if agent.command and executable_missing(agent.command[0], agent.workspace, search_path):
            return f"command {agent.command[0]!r} was not found"
        return None

    def __init__(self, *, environ: dict[str, str] | None = None) -> None:
        # The hub's environment, from which each agent gets only an allowlist (environment.py).
        self._environ = dict(environ if environ is not None else os.environ)

    async def stream(self, turn: TurnInput) -> AsyncIterator[Output]:
        agent = turn.agent
        argv, via_stdin = build_argv(agent.command, agent.preset, turn)
        env = agent_environment(
            self._environ,
            agent.env,
            {
                "HIVECALL_AGENT": agent.name,
                "HIVECALL_TURN_ID": turn.turn_id,
                "HIVECALL_SESSION_ID": turn.session_id,
            },
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=agent.workspace or None,
                env=env,
                stdin=asyncio.subprocess.PIPE if via_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as e:
            raise RuntimeFailure(
                f"command {argv[0]!r} was not found",
                code="command_not_found",
                spoken=f"Sorry, I could not start {agent.name}: its command is not installed.",
            ) from e
        except NotADirectoryError as e:
            raise RuntimeFailure(
                f"workspace {agent.workspace!r} is not a directory",
                code="workspace_not_found",
                spoken=f"Sorry, {agent.name}'s workspace folder is missing.",
            ) from e
        except PermissionError as e:
            raise RuntimeFailure(
                f"command {argv[0]!r} is not executable",
                code="command_not_executable",
                spoken=f"Sorry, I am not allowed to start {agent.name}'s command.",
            ) from e
        assert proc.stdout is not None and proc.stderr is not None
        reader = READERS[output_mode(agent.command, agent.preset)]()
        # stderr is read beside stdout: its lines are progress, its size goes in the log.
        errors: asyncio.Queue[list[Output]] = asyncio.Queue()
        stderr_task = asyncio.create_task(_stderr(proc.stderr, reader, errors))
        finished = False
        try:
            if via_stdin:
                assert proc.stdin is not None
                proc.stdin.write(turn.message.encode())
                await proc.stdin.drain()
                proc.stdin.close()
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + turn.timeout
            read: asyncio.Task[bytes] | None = None
            err: asyncio.Task[list[Output]] | None = None
            try:
                while True:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise timeout_failure(agent.name, turn.timeout)
                    read = read or asyncio.ensure_future(proc.stdout.read(4096))
                    err = err or asyncio.ensure_future(errors.get())
                    done, _ = await asyncio.wait(
                        (read, err), timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                    if err in done:
                        for item in err.result():
                            yield item
                        err = None
                    if read not in done:
                        continue
                    chunk, read = read.result(), None
                    if not chunk:
                        break
                    if text := decoder.decode(chunk):
                        for item in reader.stdout(text):
                            yield item
            finally:
                for task in (read, err):
                    if task is not None:
                        task.cancel()
            tail = decoder.decode(b"", final=True)
            for item in [*(reader.stdout(tail) if tail else []), *reader.end()]:
                yield item
            try:
                code = await asyncio.wait_for(_exited(proc), max(deadline - loop.time(), 0.1))
            except TimeoutError:
                raise timeout_failure(agent.name, turn.timeout) from None
            finished = True
            if code != 0:
                # A child the agent left running may hold stderr open: take what has come.
                stderr_bytes = 0
                with contextlib.suppress(TimeoutError):
                    stderr_bytes = await asyncio.wait_for(asyncio.shield(stderr_task), KILL_GRACE)
                # stderr can hold anything (paths, keys): log its size, never its text.
                log.warning(
                    "agent command failed",
                    extra={"agent": agent.name, "exit_code": code, "stderr_bytes": stderr_bytes},
                )
                raise RuntimeFailure(
                    f"agent {agent.name!r} exited with status {code}",
                    code="runtime_failed",
                    spoken=f"Sorry, {agent.name} stopped with an error (exit status {code}).",
                )
        finally:
            if not finished:
                await _kill_group(proc)
            stderr_task.cancel()


async def _stderr(
    stream: asyncio.StreamReader, reader: OutputReader, out: asyncio.Queue[list[Output]]
) -> int:
    """Turn stderr's lines into progress; returns how many bytes came."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    size, partial = 0, ""
    while chunk := await stream.read(4096):
        size += len(chunk)
        *lines, partial = (partial + decoder.decode(chunk)).split("\n")
        partial = partial[-4096:]  # a line that never ends is not kept whole
        last = next((line for line in reversed(lines) if line.strip()), None)
        if last is not None:
            out.put_nowait(reader.stderr_line(last))
    return size


async def _exited(proc: asyncio.subprocess.Process) -> int:
    """The agent's exit status as soon as it exits. (`proc.wait()` on Python 3.11 also waits for
    every pipe to close, which a child the agent left running can put off until the timeout.)"""
    while proc.returncode is None:  # noqa: ASYNC110 - no exit-only event to wait on
        await asyncio.sleep(0.02)
    return proc.returncode


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Stop the agent and all its children: TERM the group, then KILL after a grace period."""
    if proc.returncode is not None:
        _signal_group(proc.pid, signal.SIGKILL)  # children may outlive a finished leader
        return
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE)
    _signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
