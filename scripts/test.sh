#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs the real
# components the tests use (SoftHSM2, OpenLDAP slapd and its clients, OpenSSL,
# curl, wrk, a JDK for the JNDI client test, NSS's vfychain), then vets and runs every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(softhsm2 opensc slapd ldap-utils openssl curl wrk ca-certificates openjdk-17-jdk-headless e2fsprogs libnss3-tools python3-ldap)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

go version
go vet ./...
go test -race -count=1 -timeout 60m ./... "$@"
