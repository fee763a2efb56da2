.PHONY: build run test bench-ocsp bench-ldap bench-1m

build:
	go build -o certcenter ./cmd/certcenter

# Runs the server on the embedded default: a demo CA in ./data on first start.
run: build
	./certcenter serve

# Installs what the tests need (Debian packages) and runs every test.
test:
	./scripts/test.sh

# The million-certificate bench: seed 1 000 000 (10 % revoked), start until
# /readyz, the full CRL, memory, OCSP vs the bare Go server, LDAP vs slapd.
# DATA=/path reuses a seeded data directory; COUNT, ROUNDS, SKIP_OCSP=1,
# SKIP_LDAP=1 and OCSP_FLAGS as in bench/1m/run.sh.
bench-1m:
	./bench/1m/run.sh
