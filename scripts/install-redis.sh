#!/usr/bin/env bash
# Install what the limit-store tests (tests/test_limits*.py) need beyond requirements-dev.txt:
# Debian's redis-server binary. The tests start their own throw-away server on a free port;
# the system service is never used. Idempotent: installs only what is missing. Run as root
# (CI and the dev machines are).
#
#   bash scripts/install-redis.sh
set -euo pipefail

if dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -q "install ok installed"; then
    echo "Debian package already installed: redis-server"
else
    echo "installing Debian package: redis-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

# Fail here, not in the middle of the tests, if the server cannot run.
echo "redis-server: $(redis-server --version)"
