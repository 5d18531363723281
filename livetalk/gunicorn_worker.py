"""A gunicorn gthread worker that drains conversations when it is asked to stop.

gunicorn's own SIGTERM handler still runs first (it stops accepting and waits up to
``graceful_timeout`` for open requests); this subclass then tells every open
conversation that the server is going away, so those requests finish in time.
"""
from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker


class RelayWorker(ThreadWorker):
    """gthread, plus: SIGTERM begins draining the relay's conversations."""

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        services = getattr(self.wsgi, "extensions", {}).get("livetalk") if self.wsgi else None
        if services is not None:
            services.begin_drain()
