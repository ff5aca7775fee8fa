#!/usr/bin/env bash
# Installs what building and testing jobsched needs on Debian 12, as root.
set -euo pipefail

packages=(
	build-essential pkg-config
	postgresql-15 postgresql-server-dev-15 postgresql-client-15
	libcurl4-openssl-dev libcjson-dev
	python3 python3-psycopg2 python3-pytest
	nodejs npm openssl
	libipc-run-perl
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's postgresql package creates and may start a "main" cluster we do
# not use; the tests start their own servers.
