#!/usr/bin/env bash
# The test command (README, CI): installs everything the tests need on a fresh Debian 12
# machine, then runs the JavaScript unit tests and the whole pytest suite (unit, end to end
# through the real server + emulators, browser tests in Debian's Chromium, lint of the
# Dockerfile and workflows).
#
#   bash scripts/test.sh            everything
#   bash scripts/test.sh -k relay   extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

echo "== installing test dependencies"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
bash scripts/install-gcs-emulator.sh
bash scripts/install-browser.sh
bash scripts/install-redis.sh
bash scripts/lint.sh --install-only

echo "== JavaScript unit tests (node --test)"
node --test tests/js/

echo "== pytest"
mkdir -p artifacts
set +e
"$PYTHON" -m pytest -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$status"
