"""Speaks like `claude -p --output-format stream-json --verbose [--session-id|--resume ID] -- MSG`.

It logs its argv to $FAKE_AGENT_LOG (like fake_agent.py) and prints Claude Code's stream-json
events: init, a narration, a Bash tool call and its result, an Edit, then the result. A message
with "slowly" waits FAKE_CLAUDE_STEP_S (default 0.3 s) between events; "forever" never ends.
"""

import json
import os
import sys
import time

args = sys.argv[1:]
message = args[args.index("--") + 1] if "--" in args else (args[-1] if args else "")
if log := os.environ.get("FAKE_AGENT_LOG"):
    with open(log, "a") as f:
        record = {"argv": args, "message": message, "turn_id": os.environ.get("HIVECALL_TURN_ID")}
        f.write(json.dumps(record) + "\n")
structured = "--output-format" in args and "stream-json" in args
step = float(os.environ.get("FAKE_CLAUDE_STEP_S", "0.3")) if "slowly" in message else 0.0


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)
    time.sleep(step)


if not structured:
    print(f"Fixed it: {message}")
    sys.exit(0)
emit({"type": "system", "subtype": "init", "session_id": "s", "tools": ["Bash", "Edit"]})
emit(
    {"type": "assistant", "message": {"content": [{"type": "text", "text": "I'll run the tests."}]}}
)
emit(
    {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pytest -q"}}
            ]
        },
    }
)
emit(
    {
        "type": "user",
        "message": {
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "1 failed"}]
        },
    }
)
emit(
    {
        "type": "assistant",
        "message": {
            "content": [
                {
                    "type": "tool_use",
                    "id": "t2",
                    "name": "Edit",
                    "input": {"file_path": "src/app.py"},
                }
            ]
        },
    }
)
while "forever" in message:
    time.sleep(1)
emit({"type": "result", "subtype": "success", "is_error": False, "result": f"Fixed it: {message}"})
