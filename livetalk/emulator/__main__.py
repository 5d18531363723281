"""``python -m livetalk.emulator``: run the Gemini emulator until Ctrl-C or SIGTERM."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from livetalk.emulator.control import Mode
from livetalk.emulator.emulator import DEFAULT_REPLY_SPEED, Emulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: --host, --port, --mode, --reply-speed, --api-key, --log-level."""
    parser = argparse.ArgumentParser(prog="python -m livetalk.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free port)")
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.CONVERSE.value)
    parser.add_argument("--reply-speed", type=float, default=DEFAULT_REPLY_SPEED,
                        help="reply audio is sent this many times faster than real time (0: unpaced)")
    parser.add_argument("--api-key", default=None, help="accept only this API key (default: any)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the emulator, print how to use it, and serve until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    emulator = Emulator(args.host, args.port, mode=args.mode, reply_speed=args.reply_speed, api_key=args.api_key)
    emulator.start()
    print(f"base_url: {emulator.base_url}")
    print(f"ca_file:  {emulator.ca_file}")
    print("Point the google-genai SDK here with:")
    for name, value in emulator.env().items():
        print(f"export {name}={value}")
    sys.stdout.flush()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
