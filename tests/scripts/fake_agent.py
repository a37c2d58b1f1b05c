"""Behaves like a coding CLI for tests: `fake_agent.py [--mode M] MESSAGE` (or MESSAGE on stdin).

It writes what it received to $FAKE_AGENT_LOG (one JSON line per run) and answers in markdown.
Modes: answer (default), work[:STEPS[:SECONDS]] (a progress line a step, then the answer),
fail (exit 3 after some output), sleep (hang forever, with a child that also hangs, to test
that timeouts kill the whole process group), stream (several chunks),
slow (answer after a short pause; exits 4 if another run is busy in the same folder, so
overlapping turns show up as failures). A mode ending in -bg (answer-bg, fail-bg) first starts
a child that keeps running and holds stderr open, like a daemon an agent left behind.
"""

import json
import os
import subprocess
import sys
import time

args = sys.argv[1:]
mode = "answer"
if args[:1] == ["--mode"]:
    mode, args = args[1], args[2:]
message = args[0] if args else sys.stdin.read()
record = {
    "argv": sys.argv[1:],
    "message": message,
    "cwd": os.getcwd(),
    "turn_id": os.environ.get("HIVECALL_TURN_ID"),
    "session": os.environ.get("HIVECALL_SESSION_ID"),
    "agent": os.environ.get("HIVECALL_AGENT"),
    "pid": os.getpid(),
    "started": time.time(),
}
if log := os.environ.get("FAKE_AGENT_LOG"):
    with open(log, "a") as f:
        f.write(json.dumps(record) + "\n")

if mode.endswith("-bg"):
    mode = mode.removesuffix("-bg")
    daemon = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], stdout=subprocess.DEVNULL
    )
    if pidfile := os.environ.get("FAKE_AGENT_CHILD_PID"):
        with open(pidfile, "w") as f:
            f.write(str(daemon.pid))
if mode == "fail":
    print("partial output")
    print("Traceback: sk-abcdefghijklmnopqrstuvwx leaked", file=sys.stderr)
    sys.exit(3)
if mode == "sleep":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    if pidfile := os.environ.get("FAKE_AGENT_CHILD_PID"):
        with open(pidfile, "w") as f:
            f.write(str(child.pid))
    time.sleep(600)
if mode.startswith("work"):
    # work[:STEPS[:SECONDS]]: say what it is doing, one line a step, then answer.
    parts = mode.split(":")
    steps = parts[1] if len(parts) > 1 else "5"
    every = parts[2] if len(parts) > 2 else "0.2"
    for i in range(int(steps)):
        print(f"step {i + 1} of {steps}: checking part {i + 1}", flush=True)
        time.sleep(float(every))
    print(f"All {steps} parts are fine: {message}")
    sys.exit(0)
if mode == "stream":
    for word in ("one ", "two ", "three"):
        print(word, end="", flush=True)
        time.sleep(0.05)
    print()
    sys.exit(0)
if mode == "slow":
    try:
        busy = os.open("fake_agent.busy", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        print("another turn is running here")
        sys.exit(4)
    time.sleep(0.5)
    os.close(busy)
    os.unlink("fake_agent.busy")
print(
    f"## Done\n\nI **handled**: {message}\n\n"
    "```python\nprint('hi')\nprint('there')\n```\n- all tests pass"
)
