#!/usr/bin/env bash
# Runs every jobsched test: pg_regress (SQL surface, including the update from
# 1.0), the API test server's self-test, the deploy/ manifests' check, and the
# end-to-end tests (a real PostgreSQL with the extension preloaded against the
# Kubernetes API test server, pg_upgrade included).
#
#   bash test/run.sh [PYTEST ARGS...]                on this machine's PostgreSQL 15
#   bash test/run.sh --all-versions [PYTEST ARGS...] on 15 here, then on 17 and 18,
#                                                    each in a Debian chroot
#   bash test/run.sh --pg N [--pg M ...] [...]       on these majors only (15: here;
#                                                    17, 18: in a chroot)
#
# As root (CI, a fresh machine) it first installs the packages and the
# extension (test/as-postgres.sh); as another user it expects both, and
# cannot make chroots (test/pg-versions.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

HERE=15 # the PostgreSQL test/install-deps.sh installs (Debian 12's)
majors=()
pytest_args=()
while [ $# -gt 0 ]; do
	case $1 in
	--all-versions) majors=("$HERE" 17 18); shift ;;
	--pg)
		[ $# -ge 2 ] || { echo "run.sh: --pg needs a major version (15, 17 or 18)" >&2; exit 2; }
		case $2 in
		15 | 17 | 18) majors+=("$2") ;;
		*) echo "run.sh: PostgreSQL $2 is not tested (15, 17 and 18 are)" >&2; exit 2 ;;
		esac
		shift 2 ;;
	*) pytest_args+=("$1"); shift ;;
	esac
done
[ ${#majors[@]} -gt 0 ] || majors=("$HERE")

here=0
elsewhere=()
for v in "${majors[@]}"; do
	if [ "$v" = "$HERE" ]; then here=1; else elsewhere+=("$v"); fi
done
if [ ${#elsewhere[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: PostgreSQL ${elsewhere[*]} run in Debian chroots, which need root" >&2
	exit 2
fi

if [ "$(id -u)" -eq 0 ]; then
	started=$SECONDS
	[ $here = 0 ] || bash test/as-postgres.sh test/run.sh "${pytest_args[@]}"
	if [ ${#elsewhere[@]} -gt 0 ]; then
		JOBSCHED_PYTEST_ARGS="${pytest_args[*]}" bash test/pg-versions.sh "${elsewhere[@]}"
	fi
	echo "== all done: PostgreSQL ${majors[*]} in $((SECONDS - started)) s"
	exit 0
fi

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
python3 -m pytest -q -p no:cacheprovider test/e2e "${pytest_args[@]}"
