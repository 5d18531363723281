"""Live Talk: the WSGI entry point.

``gunicorn -c gunicorn.conf.py app:app`` serves :data:`app`; ``python app.py`` runs the
same production server (gunicorn, same config) on ``$PORT``. With no configuration
the whole product runs on this machine: local storage and the built-in Gemini emulator.
"""
from __future__ import annotations

import logging

from flask import Flask
from flask_cors import CORS

from livetalk import web
from livetalk.config import Settings
from livetalk.services import Services

log = logging.getLogger("livetalk")


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app for ``settings`` (default: read from the environment and .env)."""
    settings = settings or Settings.from_env()
    _configure_logging(settings)
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    services = Services(settings)
    app.extensions["livetalk"] = services
    CORS(app, origins=list(settings.allowed_origins) or [], supports_credentials=False)
    web.init_app(app, services)
    return app


def _configure_logging(settings: Settings) -> None:
    from livetalk.logs import configure_logging

    secrets = tuple(s for s in (settings.gemini_api_key, settings.ticket_secret, settings.redis_url) if s)
    configure_logging(settings.log_level, fmt=settings.log_format, secrets=secrets)


def main() -> None:
    """Run the production server (gunicorn with gunicorn.conf.py) in the foreground."""
    from livetalk.server import run

    run()


app = create_app()

if __name__ == "__main__":
    main()
