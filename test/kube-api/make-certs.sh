#!/bin/sh
# make-certs.sh DIR
#
# Test PKI for the Kubernetes API test server, with EC P-256 keys (fast):
#   ca.crt / ca.key          a throw-away CA
#   server.crt / server.key  signed by it, SAN IP:127.0.0.1 and DNS:localhost
#   client.crt / client.key  signed by it, for optional mTLS
# Idempotent: if DIR already holds a complete set that verifies against the
# CA and is valid for at least another day, nothing is done.  Otherwise the
# whole set is made anew in a temporary directory and moved into place, so
# an interrupted run never leaves a half-written set behind.
set -eu

dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"

complete() {
	for f in ca.crt ca.key server.crt server.key client.crt client.key; do
		[ -s "$dir/$f" ] || return 1
	done
	openssl verify -CAfile "$dir/ca.crt" "$dir/server.crt" "$dir/client.crt" >/dev/null 2>&1 || return 1
	openssl x509 -checkend 86400 -noout -in "$dir/server.crt" >/dev/null 2>&1 || return 1
	openssl x509 -checkend 86400 -noout -in "$dir/client.crt" >/dev/null 2>&1
}

if complete; then
	exit 0
fi

tmp=$(mktemp -d "$dir/.make-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
umask 077

key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# sign NAME SUBJECT EXTENSIONS: a leaf certificate for NAME.key, signed by the CA.
sign() {
	key "$tmp/$1.key"
	openssl req -new -key "$tmp/$1.key" -subj "$2" -out "$tmp/$1.csr"
	printf '%s\n' "$3" >"$tmp/$1.ext"
	openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 \
		-extfile "$tmp/$1.ext" -out "$tmp/$1.crt" 2>/dev/null
}

key "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 3650 \
	-subj "/CN=jobsched-test-ca" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$tmp/ca.crt"

sign server "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"

# The client certificate names a user the way kube reads it (CN user, O group).
sign client "/O=jobsched/CN=jobsched-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

for f in ca.crt ca.key server.crt server.key client.crt client.key; do
	mv -f "$tmp/$f" "$dir/$f"
done
# The client key is a test credential that the client process (often another
# user, e.g. postgres) must be able to read.
chmod 644 "$dir/ca.crt" "$dir/server.crt" "$dir/client.crt" "$dir/client.key"
