#!/usr/bin/env bash
# Usage (as root): bash test/as-postgres.sh SCRIPT [ARGS...]
# Installs the packages, builds and installs jobsched, then runs SCRIPT from
# a copy of the tree owned by the "postgres" user, as that user: initdb and
# postgres refuse to run as root.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
script=$1
shift

bash test/install-deps.sh
make -s clean >/dev/null
make -s
make -s install

work=$(mktemp -d /tmp/jobsched.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$src/." "$work/src"
chown -R postgres:postgres "$work"
runuser -u postgres -- env TMPDIR="$work" HOME="$work" bash "$work/src/$script" "$@"
