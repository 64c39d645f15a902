# Tern: build and test. `make test` is the one command that runs every test
# (README). It needs only Go; later link types add their Debian packages to
# DEB_PACKAGES and `make deps` installs them when run as root.

GO        ?= go
BIN       ?= bin
DEB_PACKAGES ?=
LDFLAGS   := -s -w

.PHONY: all build cross test race deps bench fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tern ./cmd/tern

# The three targets DESIGN.md promises: a Pi Zero/1 (GOARM=6), 64-bit ARM and amd64.
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tern-linux-armv6 ./cmd/tern
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tern-linux-arm64 ./cmd/tern
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tern-linux-amd64 ./cmd/tern

# Debian packages the tests drive for real (appended below by the tests that need them).
deps:
	@if [ -n "$(DEB_PACKAGES)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES); \
	  else echo "make deps: run as root to install $(DEB_PACKAGES)"; fi; fi

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 14m ./...
	$(MAKE) race
	$(MAKE) cross

# The race detector over the concurrent core (it needs cgo and a C compiler;
# the single-goroutine simulator is left out).
race:
	@if command -v gcc >/dev/null; then \
	  CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m ./router ./store ./crypto ./node ./api ./group ./call ./files ./transports ./transports/quiclink ./transports/radiolink; \
	else echo "make race: skipped, the race detector needs gcc (apt-get install -y gcc)"; fi

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...

clean:
	rm -rf $(BIN)

# The web UI tests drive Debian's Chromium (cmd/tern/web_test.go).
DEB_PACKAGES += chromium
DEB_PACKAGES += direwolf socat
DEB_PACKAGES += qemu-user-static
