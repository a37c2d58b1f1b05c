"""Which process runs a turn, so a hub that starts does not take another live process's turns
(a `hivecall ask` in a terminal) for ones a crash left behind.

A runner is `HOST:PID:START`, START being when the process began (Linux: /proc/PID/stat), so a
pid the system has since reused for another program is not mistaken for the runner.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path


def process_start(pid: int) -> str:
    """When `pid` began, in clock ticks since boot ("" where /proc is not there)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


@functools.cache
def this_runner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid())}"


def alive(runner: str | None) -> bool:
    """Whether the process that wrote `runner` still runs (on this machine; another machine's
    runners are taken as alive: only they can tell)."""
    if not runner:
        return False
    host, _, rest = runner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname():
        return True
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    return not started or process_start(pid) == started
