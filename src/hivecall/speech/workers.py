"""One speech-recognition thread and one synthesis thread per process.

Whisper and Piper each keep a core busy while they run. Local calls and HiveMind satellites
queue on the same two threads, so together they never ask for more than the two cores the hub
is sized for, and a burst on one door waits its turn instead of slowing every door down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

STT = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hivecall-stt")
TTS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hivecall-tts")


async def recognise(work: Callable[[], T]) -> T:
    """Run `work` (speech recognition) on the recognition thread."""
    return await asyncio.get_running_loop().run_in_executor(STT, work)


async def synthesise(work: Callable[[], T]) -> T:
    """Run `work` (speech synthesis) on the synthesis thread."""
    return await asyncio.get_running_loop().run_in_executor(TTS, work)
