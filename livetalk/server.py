"""``python app.py``: the production server command, ``gunicorn -c gunicorn.conf.py app:app``."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run() -> None:
    """Serve ``app:app`` with gunicorn and ``gunicorn.conf.py`` until stopped (blocks)."""
    from gunicorn.app.wsgiapp import WSGIApplication

    os.chdir(ROOT)
    sys.argv = ["gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"]
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()
