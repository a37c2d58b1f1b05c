"""An agent's context: what the voice layer and chat runtimes should know about it.

Gathered fresh for each turn (calls use a cache of a few seconds): machine, runtime, workspace
and its git repo (branch, dirty files, last commits), skills, memory files found in the workspace
(trimmed) and recent turns. Everything that may be sent off the machine goes through `redact`.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hivecall.agents.redact import redact

if TYPE_CHECKING:
    from hivecall.agents.records import AgentRecord

MEMORY_NAMES = ("AGENTS.md", "CLAUDE.md", "GEMINI.md", "CONVENTIONS.md", ".goosehints")
MEMORY_DIRS = ("memory", ".hivecall/memory", ".claude/memory")
MEMORY_FILE_CHARS = 2000
MEMORY_TOTAL_CHARS = 6000
MEMORY_READ_BYTES = 64 * 1024
GIT_TIMEOUT = 3.0


@dataclass(frozen=True)
class RepoInfo:
    root: str
    branch: str
    dirty: list[str]
    commits: list[str]


@dataclass(frozen=True)
class MemoryFile:
    path: str
    text: str
    truncated: bool


@dataclass(frozen=True)
class RecentTurn:
    at: str
    message: str
    reply: str
    status: str


@dataclass(frozen=True)
class AgentContext:
    name: str
    runtime: str
    machine: str
    workspace: str | None
    description: str
    skills: list[str]
    repo: RepoInfo | None = None
    memory: list[MemoryFile] = field(default_factory=list)
    recent: list[RecentTurn] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return asdict(self)


async def _git(cwd: str, *args: str) -> str | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
        )
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    return out.decode(errors="replace") if proc.returncode == 0 else None


async def repo_info(workspace: str) -> RepoInfo | None:
    root = await _git(workspace, "rev-parse", "--show-toplevel")
    if root is None:
        return None
    branch, status, log = await asyncio.gather(
        _git(workspace, "rev-parse", "--abbrev-ref", "HEAD"),
        _git(workspace, "status", "--porcelain"),
        _git(workspace, "log", "-5", "--format=%h %s (%cr)"),
    )
    dirty = [line[3:] for line in (status or "").splitlines() if len(line) > 3]
    return RepoInfo(
        root=root.strip(),
        branch=(branch or "").strip() or "(no commits yet)",
        dirty=dirty[:30],
        commits=redact(log or "").splitlines(),
    )


def _read_inside(path: Path, root: Path) -> str | None:
    """The start of `path` if it is a regular file whose real path stays inside `root` (a real
    path); None otherwise. A memory file is the workspace's, and anyone who can write there
    (an agent, a repo's author) could make CLAUDE.md a link to ~/.ssh/id_rsa or memory/x.md a
    link to ../../secrets."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a dangling link or a loop of links
        return None
    if not real.is_relative_to(root):
        return None
    try:
        # O_NOFOLLOW: a link put in place of the checked file since is not followed either.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # Enough for the trimmed text after redaction has dropped lines, never a whole big file.
        return os.read(fd, MEMORY_READ_BYTES).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def memory_files(workspace: str) -> list[MemoryFile]:
    base = Path(workspace)
    try:
        root = base.resolve(strict=True)
    except (OSError, RuntimeError):
        return []
    candidates = [base / n for n in MEMORY_NAMES]
    for d in MEMORY_DIRS:
        folder = base / d
        if folder.is_dir():
            candidates += sorted(folder.glob("*.md"))
    out: list[MemoryFile] = []
    budget = MEMORY_TOTAL_CHARS
    for path in candidates:
        if budget <= 0:
            break
        raw = _read_inside(path, root)
        if raw is None:
            continue
        text = redact(raw).strip()
        limit = min(MEMORY_FILE_CHARS, budget)
        out.append(MemoryFile(str(path.relative_to(base)), text[:limit], len(text) > limit))
        budget -= min(len(text), limit)
    return out


def _is_dir(path: str | None) -> bool:
    return bool(path) and os.path.isdir(str(path))


async def gather(agent: AgentRecord, recent: Sequence[RecentTurn] = ()) -> AgentContext:
    repo: RepoInfo | None = None
    memory: list[MemoryFile] = []
    is_dir: bool = bool(agent.workspace) and await asyncio.to_thread(_is_dir, agent.workspace)
    if agent.workspace and is_dir:
        repo = await repo_info(agent.workspace)
        memory = await asyncio.to_thread(memory_files, agent.workspace)
    return AgentContext(
        name=agent.name,
        runtime=agent.preset or agent.runtime,
        machine=agent.machine,
        workspace=agent.workspace,
        description=redact(agent.description),
        skills=list(agent.skills),
        repo=repo,
        memory=memory,
        recent=[RecentTurn(t.at, redact(t.message), redact(t.reply), t.status) for t in recent],
    )


def render_context(ctx: AgentContext) -> str:
    """The context as a compact text block for a system prompt or voice instructions."""
    lines = [f"Agent: {ctx.name} (runtime: {ctx.runtime}) on machine {ctx.machine}."]
    if ctx.description:
        lines.append(f"About: {ctx.description}")
    if ctx.workspace:
        lines.append(f"Workspace: {ctx.workspace}")
    if ctx.repo:
        r = ctx.repo
        lines.append(f"Git repo {r.root}, branch {r.branch}.")
        if r.dirty:
            lines.append(f"Uncommitted changes in: {', '.join(r.dirty[:10])}")
        if r.commits:
            lines.append("Last commits: " + "; ".join(r.commits))
    if ctx.skills:
        lines.append("Skills: " + ", ".join(ctx.skills))
    for m in ctx.memory:
        lines.append(f"--- {m.path}{' (trimmed)' if m.truncated else ''} ---\n{m.text}")
    if ctx.recent:
        lines.append("Recent work (oldest first):")
        for t in ctx.recent:
            reply = t.reply if len(t.reply) <= 200 else t.reply[:200] + "…"
            lines.append(f"- [{t.at}] asked: {t.message[:200]} -> {t.status}: {reply}")
    return "\n".join(lines)


class ContextCache:
    """Recently gathered contexts, so starting a call does not wait for git every time.

    A context older than `ttl` seconds is gathered again; a call started within that window
    sees the agent as it was a few seconds ago, which is what a voice greeting needs.
    """

    def __init__(
        self,
        load_recent: Callable[[str], Awaitable[Sequence[RecentTurn]]],
        *,
        ttl: float = 15.0,
    ) -> None:
        self._load_recent = load_recent
        self._ttl = ttl
        self._cache: dict[str, tuple[float, AgentRecord, AgentContext]] = {}

    async def get(self, agent: AgentRecord) -> AgentContext:
        hit = self._cache.get(agent.id)
        now = time.monotonic()
        if hit and now - hit[0] < self._ttl and hit[1] == agent:
            return hit[2]
        ctx = await gather(agent, await self._load_recent(agent.id))
        self._cache[agent.id] = (now, agent, ctx)
        return ctx
