#!/usr/bin/env bash
# Runs the benchmarks and prints their figures (see test/bench/bench.py).
# As root it first installs the packages (and nginx, the fast API) and the extension.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -eq 0 ]; then
	dpkg-query -W -f='${Status}' nginx-light 2>/dev/null | grep -q "install ok installed" ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
	exec bash test/as-postgres.sh test/bench/run.sh "$@"
fi
export TMPDIR=${TMPDIR:-/tmp}
(cd test/kube-api && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error)
exec python3 test/bench/bench.py "$@"
