"""Run hivecall's benchmarks and print their results as markdown.

    .venv/bin/python bench/run.py                # every benchmark, full size
    .venv/bin/python bench/run.py --quick        # every benchmark, small and fast
    .venv/bin/python bench/run.py bridge         # one benchmark by name

Each benchmark starts its own hub in a subprocess on 127.0.0.1 and stops it when done. A
benchmark whose subject errors stops the run with exit status 1; a missed goal is reported
(and makes the exit status 3 with --strict).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import answer_latency
import bridge_overhead
import call_setup
import cloud_setup
import compat_chat
import hivemind
import local_speech
import long_turns
import long_turns_local
from harness import BenchError, Options, Result

Benchmark = Callable[[Options], Awaitable[Result]]

# Name -> benchmark, run in this order by default. Add new ones here.
BENCHMARKS: dict[str, Benchmark] = {
    bridge_overhead.NAME: bridge_overhead.run,
    compat_chat.NAME: compat_chat.run,
    call_setup.NAME: call_setup.run,
    cloud_setup.NAME: cloud_setup.run,
    answer_latency.NAME: answer_latency.run,
    local_speech.NAME: local_speech.run,
    hivemind.NAME: hivemind.run,
    long_turns.NAME: long_turns.run,
    long_turns_local.NAME: long_turns_local.run,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run hivecall's benchmarks.", formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke test)")
    parser.add_argument(
        "--database-url",
        default="",
        help='run against PostgreSQL, e.g. "$HIVECALL_TEST_PG_URL" (a throwaway database\n'
        "is created on that server and dropped afterwards); default: SQLite",
    )
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the hub process to this file"
    )
    parser.add_argument("--strict", action="store_true", help="exit 3 when a goal is missed")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    return args


async def main(argv: list[str]) -> int:
    args = parse(argv)
    # SIGTERM cancels the run like Ctrl-C does, so every hub subprocess is still stopped.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    options = Options(quick=args.quick, database_url=args.database_url, profile=args.profile)
    all_met = True
    for name in args.names or list(BENCHMARKS):
        started = time.monotonic()
        try:
            result = await BENCHMARKS[name](options)
        except BenchError as e:
            print(f"## {name}: FAILED\n\n{e}", file=sys.stderr, flush=True)
            return 1
        all_met &= result.goal_met
        print(f"## {result.title}\n", flush=True)
        print("\n".join(result.lines), flush=True)
        print(f"\n({time.monotonic() - started:.0f} s)\n", flush=True)
    if args.profile:
        print(f"hub profile: {args.profile} (python -m pstats {args.profile})", flush=True)
    return 3 if args.strict and not all_met else 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(sys.argv[1:])))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
