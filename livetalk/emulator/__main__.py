"""``python -m livetalk.emulator``: run the Gemini + OpenAI Realtime emulator until Ctrl-C, SIGTERM or its parent ends.

It listens on 127.0.0.1:8765 by default (``--port 0`` picks a free port). Without
``--ready-json`` it prints ``base_url``, ``ca_file`` and the ``export`` lines that
point the google-genai and openai SDKs at it (OpenAI's base URL is ``base_url`` +
``/v1``). With ``--ready-json`` it prints exactly one line on stdout once it is
listening, ``{"base_url": …, "ca_file": …, "pid": …}``, and nothing else (logs
always go to stderr): the form a supervising process reads.
``--parent-pid N`` makes it exit by itself within about a second of process N ending.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from livetalk.emulator.control import DEFAULT_TOOL_TIMEOUT_S, Mode
from livetalk.emulator.emulator import DEFAULT_REPLY_SPEED, Emulator

DEFAULT_PORT = 8765
PARENT_POLL_S = 0.25  # how often --parent-pid is checked; the emulator exits within about a second


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m livetalk.emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to bind (default {DEFAULT_PORT}; 0 picks a free port)")
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.CONVERSE.value)
    parser.add_argument("--reply-speed", type=float, default=DEFAULT_REPLY_SPEED,
                        help="reply audio is sent this many times faster than real time (0: unpaced)")
    parser.add_argument("--tool-timeout", type=float, default=DEFAULT_TOOL_TIMEOUT_S, metavar="SECONDS",
                        help="an unanswered function call is cancelled after this long (default 10)")
    parser.add_argument("--api-key", default=None, help="accept only this API key (default: any)")
    parser.add_argument("--ready-json", action="store_true",
                        help='print one JSON line {"base_url", "ca_file", "pid"} on stdout once listening')
    parser.add_argument("--parent-pid", type=int, default=None, metavar="PID",
                        help="exit within about a second once process PID is gone")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the emulator, say where it is, and serve until told to stop."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    parent = ParentWatch(args.parent_pid) if args.parent_pid is not None else None
    emulator = Emulator(args.host, args.port, mode=args.mode, reply_speed=args.reply_speed,
                        api_key=args.api_key, tool_timeout_s=args.tool_timeout)
    emulator.start()
    try:
        announce(emulator, ready_json=args.ready_json)
        while not stopping.wait(PARENT_POLL_S):
            if parent is not None and parent.gone():
                logging.getLogger("livetalk.emulator").info("parent process %d is gone; stopping", parent.pid)
                break
    finally:
        emulator.stop()
    return 0


def announce(emulator: Emulator, *, ready_json: bool) -> None:
    """Tell whoever started the emulator where it listens (stdout)."""
    if ready_json:
        line = {"base_url": emulator.base_url, "ca_file": emulator.ca_file, "pid": os.getpid()}
        print(json.dumps(line), flush=True)
        return
    print(f"base_url: {emulator.base_url}")
    print(f"ca_file:  {emulator.ca_file}")
    print("Point the google-genai and openai SDKs here with:")
    for name, value in emulator.env().items():
        print(f"export {name}={value}")
    sys.stdout.flush()


class ParentWatch:
    """Whether a given process has ended (it is gone, or it was our parent and we were re-parented)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._was_parent = os.getppid() == pid

    def gone(self) -> bool:
        """True once the process no longer exists (a zombie left unreaped still counts as alive)."""
        if self._was_parent and os.getppid() != self.pid:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # it exists, owned by someone else
        return False


if __name__ == "__main__":
    sys.exit(main())
