#!/usr/bin/env bash
# Usage (as root): bash test/pg-versions.sh [MAJOR...]        (default: 17 18)
#
# Builds and tests jobsched against other PostgreSQL majors than this Debian 12
# machine's 15, each in a Debian chroot of the suite that carries it:
#   15 -> bookworm, 17 -> trixie, 18 -> testing
# For each major it
#   1. makes (or reuses, once complete) a minbase chroot under
#      $JOBSCHED_CHROOT_DIR/<suite> (default /var/cache/jobsched-chroots/<suite>)
#      with the build and test packages of that major;
#   2. mounts /proc, /dev (with /dev/shm and /dev/pts) and /sys into it, copies
#      this tree to /build/jobsched inside, and runs there `make`, `make install`,
#      then as the postgres user `npm ci` (test/kube-api), `make installcheck`
#      and the end-to-end tests (pytest test/e2e);
#   3. unmounts everything again, whatever happens (also on Ctrl-C).
# It prints how long each phase took and a summary per major, and exits non-zero
# if any major failed. A failed build shows the compiler's errors and warnings.
#
# Environment:
#   JOBSCHED_CHROOT_DIR       where the chroots live (default /var/cache/jobsched-chroots)
#   JOBSCHED_PG_VERSIONS_LOGS where the logs of each run go (default /tmp/jobsched-pg-versions)
#   JOBSCHED_CHROOT_REFRESH=1 apt-get update and upgrade a cached chroot first
#   JOBSCHED_E2E_TIMEOUT      seconds the end-to-end tests may take (default 3600)
#   JOBSCHED_PYTEST_ARGS      extra pytest arguments (e.g. "-k dispatch -x")
#   JOBSCHED_NPM_FROM_HOST=1  skip `npm ci` in the chroot: copy node_modules made on the host
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
cache=${JOBSCHED_CHROOT_DIR:-/var/cache/jobsched-chroots}
logroot=${JOBSCHED_PG_VERSIONS_LOGS:-/tmp/jobsched-pg-versions}
mirror=http://deb.debian.org/debian
e2e_timeout=${JOBSCHED_E2E_TIMEOUT:-3600}
pytest_args=${JOBSCHED_PYTEST_ARGS:-}

if [ "$(id -u)" -ne 0 ]; then
	echo "pg-versions.sh: run as root (debootstrap, chroot and mount need it)" >&2
	exit 2
fi

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(17 18)

suite_of() {
	case $1 in
	15) echo bookworm ;;
	17) echo trixie ;;
	18) echo testing ;;
	*) return 1 ;;
	esac
}
for v in "${versions[@]}"; do
	suite_of "$v" >/dev/null || {
		echo "pg-versions.sh: no Debian suite known for PostgreSQL $v (known: 15 17 18)" >&2
		exit 2
	}
done

# ---- bookkeeping ------------------------------------------------------------

declare -A result=() # "$v,build|regress|e2e|pg|upgrade|node" -> text
declare -A times=()  # "$v,phase" -> seconds
declare -A order=()  # "$v" -> its phases, in order, "|"-separated
failed_any=0
current_root="" # the chroot whose mounts are up, for the trap
bgpid=""        # the command the script waits for (see bg)
tailpid=""      # the tail that shows the end-to-end tests' output as it comes
hostnpm=""      # node_modules made on the host, when npm cannot reach the registry from the chroot
summary_done=0

now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# phase V NAME: starts timing a phase; phase_end prints and records it
phase() {
	phase_v=$1 phase_name=$2 phase_t0=$(now)
	result["$phase_v,running"]=$phase_name
	echo
	echo "== [PostgreSQL $phase_v] $phase_name"
}
phase_end() {
	local s
	s=$(elapsed "$phase_t0")
	times["$phase_v,$phase_name"]=$s
	result["$phase_v,running"]=""
	order[$phase_v]+="${phase_name}|"
	echo "-- [PostgreSQL $phase_v] $phase_name: ${1:-done} in ${s} s"
}

# diagnostics LOG [REGEX]: the compilers' error and warning lines of a build
# log (or those matching REGEX), each marked with the compiler that printed it,
# deduplicated, in order, at most 80
diagnostics() {
	awk '
		/^[^ \t]*gcc[-0-9]* / { cc = "gcc" }
		/^[^ \t]*clang[-0-9]* / { cc = "clang" }
		$0 ~ want && !seen[$0]++ { n++; if (n <= 80) print "[" cc "] " $0 }
		END {
			if (n > 80) print "... and " n - 80 " more"
			exit n == 0
		}' want="${2:-(error|warning): }" "$1"
}

# ---- the chroot's mounts and processes --------------------------------------

# every mount point at or under DIR, deepest first
mounts_under() {
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# the processes whose root is DIR: only ones this script started in it
# (the chroot is locked for this run)
chroot_pids() {
	local p r
	for p in /proc/[0-9]*; do
		r=$(readlink "$p/root" 2>/dev/null) || continue
		[ "$r" = "$1" ] && echo "${p#/proc/}"
	done
	return 0
}

release_chroot() {
	local root=$1 pids m tries
	mapfile -t pids < <(chroot_pids "$root")
	if [ ${#pids[@]} -gt 0 ]; then
		echo "stopping processes left in $root: ${pids[*]}"
		kill -TERM "${pids[@]}" 2>/dev/null || true
		for ((tries = 0; tries < 50; tries++)); do
			mapfile -t pids < <(chroot_pids "$root")
			[ ${#pids[@]} -eq 0 ] && break
			sleep 0.1
		done
		if [ ${#pids[@]} -gt 0 ]; then
			kill -KILL "${pids[@]}" 2>/dev/null || true
		fi
	fi
	for m in proc sys dev; do
		if mountpoint -q "$root/$m" 2>/dev/null; then
			umount -R -l "$root/$m" || echo "warning: could not unmount $root/$m" >&2
		fi
	done
	# anything else (a mount a package or a test made inside)
	for m in $(mounts_under "$root"); do
		umount -R -l "$m" 2>/dev/null || true
	done
}

mount_chroot() {
	local root=$1
	release_chroot "$root" # leftovers of an interrupted run
	current_root=$root
	mkdir -p "$root/proc" "$root/dev" "$root/sys"
	mount --bind /proc "$root/proc" || mount -t proc proc "$root/proc" || return 1
	# /dev with its submounts (/dev/shm for dynamic shared memory, /dev/pts);
	# rslave so that unmounting them here never reaches the host's
	mount --rbind /dev "$root/dev" || return 1
	mount --make-rslave "$root/dev" || return 1
	mount --rbind /sys "$root/sys" || return 1
	mount --make-rslave "$root/sys" || return 1
	# names the chroot needs from the host, fresh each run
	cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	grep -qs '^127\.0\.0\.1[[:space:]].*localhost' "$root/etc/hosts" ||
		printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >>"$root/etc/hosts"
}

# shellcheck disable=SC2317
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e # clean up as much as can be, whatever fails
	exec 1>&3 2>&4
	if [ -n "$bgpid" ]; then
		stop_tree "$bgpid"
	fi
	if [ -n "$current_root" ]; then
		release_chroot "$current_root"
		current_root=""
	fi
	if [ -n "$tailpid" ]; then
		kill "$tailpid" 2>/dev/null
	fi
	if [ -n "$hostnpm" ]; then
		rm -rf "$hostnpm"
	fi
	if [ "$summary_done" != 1 ]; then
		summary
	fi
	exit "$rc"
}
# the traps may run while a command's output goes to a log: they write to
# the script's own stdout and stderr, kept here
exec 3>&1 4>&2
trap cleanup EXIT
trap 'echo "interrupted" >&4; exit 130' INT
trap 'echo "terminated" >&4; exit 143' TERM

# ---- running commands in the chroot -----------------------------------------

pgpath() { echo "/usr/lib/postgresql/$1/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"; }

# Every long command runs in the background while the script waits for it:
# bash runs a trap only once the foreground command has ended, and not at all
# for SIGINT when that command (pytest, npm) handled the signal itself; a
# `wait` returns at once. (The background command ignores SIGINT; the traps
# end whatever runs in the chroot.)
bg() {
	local rc=0
	"$@" 3>&- 4>&- &
	bgpid=$!
	wait "$bgpid" || rc=$?
	bgpid=""
	return "$rc"
}

# descendants PID: PID and every process below it, children first
# shellcheck disable=SC2317
descendants() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1 }
		function walk(p,   n, a, i) {
			n = split(kids[p], a, " ")
			for (i = 1; i <= n; i++) walk(a[i])
			print p
		}
		END { walk(root) }'
}

# stop_tree PID: stops a command the script started (debootstrap runs on the
# host, not in the chroot) with everything it started
# shellcheck disable=SC2317
stop_tree() {
	local pids p tries alive
	mapfile -t pids < <(descendants "$1")
	kill -TERM "${pids[@]}" 2>/dev/null
	for ((tries = 0; tries < 50; tries++)); do
		alive=()
		for p in "${pids[@]}"; do
			kill -0 "$p" 2>/dev/null && alive+=("$p")
		done
		[ ${#alive[@]} -eq 0 ] && return 0
		sleep 0.1
	done
	kill -KILL "${alive[@]}" 2>/dev/null || true
}

# in_root ROOT V CMD...: a command as root in the chroot, with a clean environment
in_root() {
	local root=$1 v=$2
	shift 2
	bg chroot "$root" /usr/bin/env -i PATH="$(pgpath "$v")" HOME=/root TMPDIR=/tmp \
		LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# as_postgres ROOT V SCRIPT: a bash script as the postgres user in /build/jobsched
as_postgres() {
	local root=$1 v=$2
	bg chroot "$root" /usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups \
		/usr/bin/env -i PATH="$(pgpath "$v")" HOME=/build/home TMPDIR=/build/tmp \
		LANG=C.UTF-8 USER=postgres LOGNAME=postgres PYTHONDONTWRITEBYTECODE=1 \
		bash -c "cd /build/jobsched && $3"
}

# ---- making the chroot --------------------------------------------------------

base_packages() {
	local v=$1
	echo build-essential pkg-config \
		"postgresql-$v" "postgresql-server-dev-$v" "postgresql-client-$v" \
		libcurl4-openssl-dev libcjson-dev \
		python3 python3-psycopg2 python3-pytest \
		nodejs npm openssl ca-certificates
}

apt_opts=(-o Acquire::Check-Valid-Until=false -o Dpkg::Options::=--force-confdef
	-o Dpkg::Options::=--force-confold)

# resolve_packages ROOT V: the package list, each name checked in the suite;
# a name that is not a real package is replaced by what provides it
resolve_packages() {
	local root=$1 v=$2 p cand prov out=()
	for p in $(base_packages "$v"); do
		cand=$(in_root "$root" "$v" apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
		if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then
			out+=("$p")
			continue
		fi
		prov=$(in_root "$root" "$v" apt-cache showpkg "$p" 2>/dev/null |
			awk '/^Reverse Provides:/ { on = 1; next } on && NF { print $1; exit }')
		if [ -n "$prov" ]; then
			echo "note: $p is not a package in this suite; $prov provides it" >&2
			out+=("$prov")
		else
			echo "error: no package $p (nor one that provides it) in this suite" >&2
			return 1
		fi
	done
	printf '%s\n' "${out[@]}" | awk '!seen[$0]++'
}

ensure_debootstrap() {
	command -v debootstrap >/dev/null && return 0
	echo "installing debootstrap on the host"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends debootstrap >/dev/null
}

# make_chroot V SUITE ROOT LOG: debootstrap (once) and the packages (when the
# list changed, or on JOBSCHED_CHROOT_REFRESH=1)
make_chroot() {
	local v=$1 suite=$2 root=$3 log=$4 m pkgs
	if [ ! -f "$root/.jobsched-debootstrap-complete" ]; then
		phase "$v" "debootstrap $suite"
		ensure_debootstrap || return 1
		if [ -e "$root" ]; then
			echo "removing the incomplete chroot $root"
			release_chroot "$root"
			rm -rf --one-file-system "$root"
		fi
		mkdir -p "$root"
		current_root=$root # debootstrap mounts /proc in it
		if ! bg debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$log/debootstrap.log" 2>&1; then
			tail -30 "$log/debootstrap.log"
			phase_end "FAILED (see $log/debootstrap.log)"
			return 1
		fi
		# packages must not start services in the chroot (the postgresql package
		# would start its "main" cluster), nor make that cluster at all
		printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
		chmod 755 "$root/usr/sbin/policy-rc.d"
		mkdir -p "$root/etc/postgresql-common"
		echo "create_main_cluster = false" >"$root/etc/postgresql-common/createcluster.conf"
		# testing's Release file is often past its Valid-Until
		echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99jobsched"
		touch "$root/.jobsched-debootstrap-complete"
		phase_end
	fi

	echo "chroot: $root (made $(date -r "$root/.jobsched-debootstrap-complete" '+%F %T'))"
	mount_chroot "$root" || return 1

	if [ ! -f "$root/.jobsched-packages" ] || [ "${JOBSCHED_CHROOT_REFRESH:-0}" = 1 ] ||
		[ "$(cat "$root/.jobsched-packages")" != "$(base_packages "$v")" ]; then
		phase "$v" "packages"
		# an interrupted earlier install leaves packages to configure
		in_root "$root" "$v" dpkg --configure -a >"$log/apt.log" 2>&1 || true
		if ! in_root "$root" "$v" apt-get "${apt_opts[@]}" update >>"$log/apt.log" 2>&1; then
			tail -30 "$log/apt.log"
			phase_end "FAILED (apt-get update, see $log/apt.log)"
			return 1
		fi
		if ! pkgs=$(resolve_packages "$root" "$v"); then
			phase_end "FAILED (package names)"
			return 1
		fi
		echo "installing: ${pkgs//$'\n'/ }"
		if [ "${JOBSCHED_CHROOT_REFRESH:-0}" = 1 ]; then
			in_root "$root" "$v" apt-get "${apt_opts[@]}" -y upgrade >>"$log/apt.log" 2>&1 || true
		fi
		# shellcheck disable=SC2086
		if ! in_root "$root" "$v" apt-get "${apt_opts[@]}" install -y --no-install-recommends \
			$pkgs >>"$log/apt.log" 2>&1; then
			tail -40 "$log/apt.log"
			phase_end "FAILED (apt-get install, see $log/apt.log)"
			return 1
		fi
		in_root "$root" "$v" apt-get clean || true
		# the package makes the postgres user; make it if it did not
		if ! in_root "$root" "$v" getent passwd postgres >/dev/null; then
			in_root "$root" "$v" groupadd --system postgres 2>/dev/null || true
			in_root "$root" "$v" useradd --system --gid postgres --home-dir /var/lib/postgresql \
				--shell /bin/bash postgres || return 1
		fi
		base_packages "$v" >"$root/.jobsched-packages"
		phase_end
	fi
	return 0
}

# ---- the node modules of the API test server ---------------------------------

# host_node_modules: npm ci on the host, once, in a scratch copy of
# test/kube-api's package files (the work tree's own node_modules is left
# alone), into $hostnpm/node_modules
host_node_modules() {
	[ -n "$hostnpm" ] && [ -d "$hostnpm/node_modules" ] && return 0
	command -v npm >/dev/null || {
		echo "no npm on the host" >&2
		return 1
	}
	hostnpm=$(mktemp -d /tmp/jobsched-pgv-npm.XXXXXX)
	cp "$src/test/kube-api/package.json" "$src/test/kube-api/package-lock.json" "$hostnpm/" || return 1
	(cd "$hostnpm" && bg npm ci --no-audit --no-fund --no-update-notifier --loglevel=error)
}

# ---- one major ------------------------------------------------------------------

run_version() {
	local v=$1 suite root log pgc out rc
	suite=$(suite_of "$v")
	root=$cache/$suite
	log=$logroot/$v
	pgc=/usr/lib/postgresql/$v/bin/pg_config
	rm -rf "$log"
	mkdir -p "$log" "$cache"
	result["$v,build"]="not run" result["$v,regress"]="not run" result["$v,e2e"]="not run"

	# one run at a time per chroot
	exec {lockfd}>"$cache/$suite.lock"
	if ! flock -n "$lockfd"; then
		echo "another run is using $root" >&2
		result["$v,build"]="chroot busy"
		return 1
	fi

	if ! make_chroot "$v" "$suite" "$root" "$log"; then
		result["$v,build"]="chroot setup failed"
		return 1
	fi

	# what the chroot has
	# shellcheck disable=SC2016
	result["$v,pg"]=$(in_root "$root" "$v" dpkg-query -W -f '${Version}' "postgresql-$v" 2>/dev/null || echo "?")
	if [ -x "$root/usr/lib/postgresql/$v/bin/pg_upgrade" ]; then
		result["$v,upgrade"]="yes"
	else
		result["$v,upgrade"]="no"
	fi
	result["$v,node"]=$(in_root "$root" "$v" node --version 2>/dev/null || echo "?")
	out=$(in_root "$root" "$v" bash -c 'command -v pg_config; pg_config --version' 2>&1 || true)
	echo "pg_config on PATH in the chroot: ${out//$'\n'/ }"
	if [[ "$out" != *"PostgreSQL $v."* ]]; then
		echo "error: pg_config on PATH is not PostgreSQL $v's" >&2
		result["$v,build"]="wrong pg_config"
		return 1
	fi

	phase "$v" "copy tree"
	rm -rf --one-file-system "$root/build/jobsched" "$root/build/tmp"
	mkdir -p "$root/build/jobsched" "$root/build/tmp" "$root/build/home"
	tar -C "$src" --exclude=.git --exclude=node_modules --exclude=./tmp_check \
		--exclude=./results --exclude=./log --exclude=./regression.diffs \
		--exclude=./regression.out --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=__pycache__ --exclude=.pytest_cache -cf - . |
		tar -C "$root/build/jobsched" -xf - || {
		phase_end FAILED
		result["$v,build"]="copy FAILED"
		return 1
	}
	phase_end

	phase "$v" "build"
	# -k: every file's errors, not only the first failing file's
	if in_root "$root" "$v" make -C /build/jobsched -k PG_CONFIG="$pgc" >"$log/build.log" 2>&1; then
		result["$v,build"]="ok"
		if grep -qE '(warning|error): ' "$log/build.log"; then
			echo "compiler warnings (deduplicated; full log: $log/build.log):"
			diagnostics "$log/build.log"
		fi
		phase_end ok
	else
		result["$v,build"]="FAILED"
		echo "the build failed against PostgreSQL $v; compiler errors and warnings (deduplicated;"
		echo "[clang] is the LLVM bitcode PGXS makes for JIT, built without the Makefile's PG_CFLAGS):"
		diagnostics "$log/build.log" || tail -40 "$log/build.log"
		echo "full log with context: $log/build.log"
		# the same without -Werror: which diagnostics are errors in their own right
		local cflags
		# shellcheck disable=SC2016
		cflags=$(in_root "$root" "$v" make -s -C /build/jobsched --eval='print-pg-cflags: ; @echo $(PG_CFLAGS)' \
			print-pg-cflags PG_CONFIG="$pgc" 2>/dev/null | sed -E 's/(^| )-Werror( |$)/ /g') || cflags=""
		if [ -n "$cflags" ]; then
			in_root "$root" "$v" make -s -C /build/jobsched clean PG_CONFIG="$pgc" >/dev/null 2>&1 || true
			in_root "$root" "$v" make -C /build/jobsched -k PG_CONFIG="$pgc" PG_CFLAGS="$cflags" \
				>"$log/build-no-werror.log" 2>&1 || true
			echo
			echo "errors of the same build without -Werror (log: $log/build-no-werror.log):"
			diagnostics "$log/build-no-werror.log" 'error: ' || echo "(none)"
			if [ -f "$root/build/jobsched/jobsched.so" ]; then
				echo "(without -Werror, jobsched.so links)"
			fi
		fi
		phase_end FAILED
		result["$v,regress"]="skipped (no build)" result["$v,e2e"]="skipped (no build)"
		return 1
	fi

	phase "$v" "install"
	if ! in_root "$root" "$v" make -C /build/jobsched install PG_CONFIG="$pgc" >"$log/install.log" 2>&1; then
		tail -20 "$log/install.log"
		result["$v,build"]="install FAILED"
		phase_end FAILED
		return 1
	fi
	in_root "$root" "$v" chown -R postgres:postgres /build || return 1
	phase_end

	phase "$v" "npm ci"
	# npm in the chroot trusts what the host's npm trusts: a machine whose
	# traffic to the registry passes a TLS proxy has that proxy's CA in its
	# bundle, which the chroot's ca-certificates lacks
	local cafile=""
	if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
		cp /etc/ssl/certs/ca-certificates.crt "$root/build/host-ca.crt"
		chmod 644 "$root/build/host-ca.crt"
		cafile="NPM_CONFIG_CAFILE=/build/host-ca.crt"
	fi
	: >"$log/npm.log"
	if [ "${JOBSCHED_NPM_FROM_HOST:-0}" != 1 ] &&
		as_postgres "$root" "$v" "cd test/kube-api && $cafile timeout 300 npm ci --no-audit --no-fund \
		--no-update-notifier --fetch-retries=1 --loglevel=error" >>"$log/npm.log" 2>&1; then
		phase_end "ok (the registry, from the chroot)"
	else
		tail -10 "$log/npm.log"
		echo "no npm ci in the chroot: copying node_modules made on the host"
		if ! host_node_modules >>"$log/npm.log" 2>&1; then
			tail -10 "$log/npm.log"
			result["$v,e2e"]="npm FAILED"
			phase_end FAILED
			return 1
		fi
		rm -rf "$root/build/jobsched/test/kube-api/node_modules"
		cp -a "$hostnpm/node_modules" "$root/build/jobsched/test/kube-api/node_modules"
		in_root "$root" "$v" chown -R postgres:postgres /build/jobsched/test/kube-api/node_modules
		phase_end "ok (copied from the host)"
	fi

	local ok=1
	phase "$v" "installcheck"
	rc=0
	as_postgres "$root" "$v" "make installcheck PG_CONFIG=$pgc" >"$log/installcheck.log" 2>&1 || rc=$?
	cat "$log/installcheck.log"
	out=$(grep -E 'tests? (passed|failed)|All [0-9]+ tests passed' "$log/installcheck.log" | tail -1 | sed 's/^[#[:space:]]*//;s/[[:space:]]*$//')
	if [ "$rc" -eq 0 ]; then
		result["$v,regress"]="ok: ${out:-exit 0}"
		phase_end ok
	else
		ok=0
		result["$v,regress"]="FAILED: ${out:-exit $rc}"
		if [ -f "$root/build/jobsched/regression.diffs" ]; then
			cp "$root/build/jobsched/regression.diffs" "$log/"
			echo "--- regression.diffs (first 200 lines; whole: $log/regression.diffs)"
			head -200 "$log/regression.diffs"
		fi
		phase_end FAILED
	fi

	phase "$v" "e2e"
	: >"$log/e2e.log"
	tail -n +1 -f "$log/e2e.log" &
	tailpid=$!
	if as_postgres "$root" "$v" "timeout -k 30 $e2e_timeout python3 -m pytest -q -p no:cacheprovider test/e2e $pytest_args" \
		>>"$log/e2e.log" 2>&1; then
		rc=0
	else
		rc=$?
	fi
	sleep 0.5
	kill "$tailpid" 2>/dev/null || true
	wait "$tailpid" 2>/dev/null || true
	tailpid=""
	out=$(tail -5 "$log/e2e.log" | grep -oE '[0-9]+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected)' | paste -sd, - | sed 's/,/, /g')
	if [ "$rc" -eq 0 ]; then
		result["$v,e2e"]="ok: ${out:-exit 0}"
		phase_end ok
	else
		ok=0
		[ "$rc" -eq 124 ] && out="timed out after ${e2e_timeout} s${out:+; $out}"
		result["$v,e2e"]="FAILED: ${out:-exit $rc}"
		phase_end FAILED
	fi
	[ "$ok" = 1 ]
}

summary() {
	local v p line ps
	summary_done=1
	echo
	echo "==================== summary (logs: $logroot/<version>/) ===================="
	for v in "${versions[@]}"; do
		[ -n "${result[$v,build]:-}" ] || continue
		echo "PostgreSQL $v ($(suite_of "$v"), postgresql-$v ${result[$v,pg]:-?}," \
			"pg_upgrade: ${result[$v,upgrade]:-?}, node ${result[$v,node]:-?})"
		echo "  build:      ${result[$v,build]}"
		echo "  pg_regress: ${result[$v,regress]}"
		echo "  e2e:        ${result[$v,e2e]}"
		if [ -n "${result[$v,running]:-}" ]; then
			echo "  stopped:    during \"${result[$v,running]}\" (after $(elapsed "$phase_t0") s)"
		fi
		line=""
		IFS='|' read -ra ps <<<"${order[$v]:-}"
		for p in "${ps[@]}"; do
			[ -n "$p" ] && line+="${line:+, }$p ${times[$v,$p]} s"
		done
		echo "  times:      ${line:-none}"
	done
}

for v in "${versions[@]}"; do
	if ! run_version "$v"; then
		failed_any=1
	fi
	if [ -n "$current_root" ]; then
		release_chroot "$current_root"
		current_root=""
	fi
	[ -n "${lockfd:-}" ] && exec {lockfd}>&- && lockfd=""
done

summary
exit "$failed_any"
