"""ovos-persona-server as the compat benchmark runs it: run with bench/.venv-persona's Python.

    bench/.venv-persona/bin/python bench/compat_persona.py --persona FILE --port PORT

The same uvicorn settings as bench/server.py gives hivecall (127.0.0.1, warnings only, no access
log, uvicorn's automatic choice of event loop and HTTP parser), so the two differ only in the
app. The server stops (as on Ctrl-C) if the benchmark runner dies without stopping it.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time


def exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    import uvicorn
    from ovos_persona_server import create_persona_app

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persona", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    exit_with_parent(os.getppid())
    app = create_persona_app(args.persona)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
