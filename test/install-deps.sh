#!/usr/bin/env bash
# Installs what building and testing jobsched needs on Debian 12, as root.
set -euo pipefail

packages=(
	build-essential pkg-config
	postgresql-15 postgresql-server-dev-15 postgresql-client-15
	libcurl4-openssl-dev libcjson-dev
	python3 python3-psycopg2 python3-pytest
	openssl
)
# Node.js for the Kubernetes API test server: Debian's, unless one is installed
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# Debian's postgresql package creates and may start a "main" cluster we do
# not use; the tests start their own servers.
