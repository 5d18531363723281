"""gunicorn settings for Live Talk (``gunicorn -c gunicorn.conf.py app:app``).

Conversations are long-lived WebSockets. Each one holds a gthread request thread
that only *waits* (the frames are moved by one asyncio loop thread per worker, see
livetalk/wsio.py), so threads are cheap; CPU is what limits a worker. Two workers
use both cores of a 2-vCPU Cloud Run instance. Keep Cloud Run's ``--concurrency``
equal to WEB_CONCURRENCY × GUNICORN_THREADS (2 × 100 = 200 by default).
"""
import os
import secrets

from livetalk.config import Settings
from livetalk.instance import Instance
from livetalk.logs import gunicorn_logconfig_dict

# Every worker must sign and check tickets with the same key: without a configured
# TICKET_SECRET, the master makes one up before forking (per instance, not across instances).
os.environ.setdefault("TICKET_SECRET", secrets.token_urlsafe(32))

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "100"))
# gthread + request headers read on the poller (a slow client holds no thread; 408 after 5 s),
# JSON error answers, draining conversations on SIGTERM: see livetalk/gunicorn_worker.py
worker_class = "livetalk.gunicorn_worker.RelayWorker"
worker_connections = threads + 50  # room for kept-alive HTTP connections beside the sockets
timeout = 30  # heartbeat of the worker's main loop, not a request timeout
graceful_timeout = 8  # Cloud Run sends SIGKILL 10 s after SIGTERM
keepalive = 5
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
settings = Settings.from_env()
loglevel = settings.log_level.lower()
logconfig_dict = gunicorn_logconfig_dict(settings.log_level, settings.log_format)  # JSON on Cloud Run
control_socket_disable = True  # no control socket under $HOME: the container user has no use for it
preload_app = False  # every worker builds its own app, loop thread and clients after fork


def on_starting(server):
    """Before the workers fork: the instance's shared state, and in demo mode its one emulator."""
    server.livetalk_instance = Instance(settings).start()


def on_exit(server):
    """The master is done: stop the emulator, remove the shared state."""
    instance = getattr(server, "livetalk_instance", None)
    if instance is not None:
        instance.stop()


def child_exit(server, worker):
    """A worker is gone (exited, killed or timed out): its open conversations stop counting in /metrics."""
    instance = getattr(server, "livetalk_instance", None)
    if instance is not None:
        instance.worker_exited(worker.pid)


def post_worker_init(worker):
    """Start the relay loop (and the emulator, in demo mode) before the first request."""
    worker.wsgi.extensions["livetalk"].warm_up()


def worker_exit(server, worker):
    """Finish what is pending (recordings, storage writes) before the process goes."""
    services = getattr(worker.wsgi, "extensions", {}).get("livetalk") if worker.wsgi else None
    if services is not None:
        services.close()
