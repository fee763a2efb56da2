.PHONY: build run test bench-ocsp bench-ldap

build:
	go build -o certcenter ./cmd/certcenter

# Runs the server on the embedded default: a demo CA in ./data on first start.
run: build
	./certcenter serve

# Installs what the tests need (Debian packages) and runs every test.
test:
	./scripts/test.sh
