"""Agent processes a killed hub left behind, found and stopped when the next hub starts.

Each command agent runs in a process group of its own (command.py), which outlives a hub that is
SIGKILLed. Every agent process, and whatever it starts, carries `HIVECALL_TURN_ID` in its
environment, so the turns the store still calls unfinished name exactly the processes to stop:
a pid reused by an unrelated program cannot match, and another hub's agents carry other turn
ids. Linux only (/proc); elsewhere nothing is found and the turns are still marked interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Collection
from pathlib import Path

PROC = Path("/proc")
GRACE = 2.0


def orphan_groups(turn_ids: Collection[str], proc: Path = PROC) -> set[int]:
    """Process groups holding a process of one of `turn_ids` (never this process's group)."""
    wanted = {f"HIVECALL_TURN_ID={t}".encode() for t in turn_ids}
    own = os.getpgrp()
    groups: set[int] = set()
    try:
        entries = list(proc.iterdir())
    except OSError:
        return groups
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            pgid = os.getpgid(int(entry.name))
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile, or not ours to read
        if pgid != own and wanted.intersection(environ.split(b"\0")):
            groups.add(pgid)
    return groups


async def kill_orphans(turn_ids: Collection[str]) -> int:
    """TERM the orphans' groups, KILL what is left after GRACE; returns how many groups."""
    groups = await asyncio.to_thread(orphan_groups, turn_ids)
    if not groups:
        return 0
    for pgid in groups:
        _signal(pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GRACE
    # No event tells that a group has exited: poll.
    while loop.time() < deadline and any(_alive(g) for g in groups):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    for pgid in groups:
        _signal(pgid, signal.SIGKILL)
    return len(groups)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
