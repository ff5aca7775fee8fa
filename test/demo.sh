#!/usr/bin/env bash
# The demo: a throwaway PostgreSQL with jobsched and the local Kubernetes API
# test server; a few jobs go from pending to succeeded; jobsched.status is
# printed.  As root it first installs the packages and the extension.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] && exec bash test/as-postgres.sh test/demo.sh "$@"

export TMPDIR=${TMPDIR:-/tmp}
(cd test/kube-api && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error)
exec python3 test/demo.py "$@"
