#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs it.
#   Python package + test extras (pip), the real OpenPanel SDKs (npm), Chromium and wrk (apt, when missing).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m reliability`.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# wrk drives the overload and burst tests (tests/reliability/test_r08_*, test_r09_*).
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi

(cd tests/js && npm ci --no-audit --no-fund --loglevel=error)

exec python3 -m pytest -q "$@"
