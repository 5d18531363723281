"""``python app.py``: the production server (gunicorn + gunicorn.conf.py) in the foreground."""
from __future__ import annotations

from pathlib import Path

from gunicorn.app.base import BaseApplication

CONFIG_FILE = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


class _Server(BaseApplication):
    def __init__(self, config_file: Path) -> None:
        self._config_file = config_file
        super().__init__()

    def load_config(self) -> None:
        self.load_config_from_file(str(self._config_file))

    def load(self):
        from app import app

        return app


def run(config_file: Path = CONFIG_FILE) -> None:
    """Serve ``app:app`` with gunicorn using ``config_file`` until stopped."""
    _Server(config_file).run()
