"""Serve the app in a process of its own on an ephemeral port, for tests that kill the server.

The app is the production module's ``app`` (configured from the environment); this prints
``LISTENING <url>`` on stdout once the socket is bound, then serves until it is killed.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from werkzeug.serving import make_server

    from app import app

    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"LISTENING http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
