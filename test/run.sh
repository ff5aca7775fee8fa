#!/usr/bin/env bash
# Runs every jobsched test: pg_regress (SQL surface), the API test server's
# self-test, and the end-to-end tests (a real PostgreSQL 15 with the
# extension preloaded against the Kubernetes API test server).
#
# As root (CI, a fresh machine) it first installs the packages and the
# extension (test/as-postgres.sh); as another user it expects both.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] && exec bash test/as-postgres.sh test/run.sh "$@"

export TMPDIR=${TMPDIR:-/tmp}
(cd test/kube-api && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error)

echo "== pg_regress"
rm -rf tmp_check results regression.diffs regression.out
if ! make -s installcheck; then
	cat regression.diffs 2>/dev/null || true
	exit 1
fi

echo "== Kubernetes API test server self-test"
node --test test/kube-api/selftest.mjs

echo "== deploy/ manifests against the official schema"
node test/deploy/check-manifests.mjs

echo "== end-to-end"
python3 -m pytest -q -p no:cacheprovider test/e2e "$@"
