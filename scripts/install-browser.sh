#!/usr/bin/env bash
# Install what the browser tests (tests/e2e/) need: Debian's Chromium (never Playwright's own
# browser download), espeak-ng and sox to make the fake microphone's speech, Japanese fonts for
# readable screenshots, and Playwright for Python (its pip package carries the driver).
# Idempotent: installs only what is missing. Run as root (CI and the dev machines are).
#
#   bash scripts/install-browser.sh
set -euo pipefail

PLAYWRIGHT_VERSION="1.65.2"
PYTHON="${PYTHON:-python3}"
DEBIAN_PACKAGES=(chromium espeak-ng sox fonts-noto-cjk)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "Debian packages already installed: ${DEBIAN_PACKAGES[*]}"
fi

installed="$("$PYTHON" -m pip show playwright 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [[ "$installed" == "$PLAYWRIGHT_VERSION" ]]; then
    echo "playwright $PLAYWRIGHT_VERSION already installed"
else
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
    echo "installed playwright $PLAYWRIGHT_VERSION"
fi

# Fail here, not in the middle of the tests, if the browser cannot start.
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --dump-dom about:blank >/dev/null 2>&1 \
    || { echo "chromium does not start headless" >&2; exit 1; }
echo "chromium: $(chromium --version 2>/dev/null)"
