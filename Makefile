# vipcast — see README.md. Every target that builds or tests first runs the
# idempotent scripts/deps.sh, so a fresh Debian host needs only `make test`.

GO        ?= go
PKGS      := ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X vipcast/internal/version.Version=$(VERSION)
BIN       := bin

.PHONY: all deps generate check-generated build test unit lint bench demo e2e soak clean

all: build

deps:
	scripts/deps.sh

# Rebuild the BPF objects and their Go bindings (commit the result).
generate: deps
	$(GO) generate ./...

# Fails when the committed generated files differ from a fresh build.
check-generated: deps
	scripts/check-generated.sh

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags soak ./test/soak/
	$(GO) tool staticcheck $(PKGS)
	$(GO) tool staticcheck -tags soak ./test/soak/

# Everything: generated files, lint, and all tests. Privileged tests need
# root; under CI=true they fail rather than skip when they cannot run.
test: check-generated lint build
	$(GO) test -count=1 -timeout 15m $(PKGS)
	GO=$(GO) scripts/fuzz.sh 10
	VERSION=$(VERSION) GO=$(GO) scripts/test-deb.sh

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 20x ./lb/maglev/
	$(GO) test -run '^$$' -bench ConnTableRetention -benchtime 1x ./lb/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 10m ./lb/bench/

# The netns lab (test/lab) narrated: BGP, curl through the VIP, vip list,
# stats, a real failing, all failing (route withdrawn), recovery. Root;
# under 2 minutes; fails if any step misbehaves.
demo: build
	scripts/demo.sh

# Only the end-to-end scenarios of test/e2e (also part of `make test`).
e2e: build
	$(GO) test -count=1 -v -timeout 10m ./test/e2e/

# The soak (test/soak; build tag `soak`, so not part of `make test`):
# vipcastd in the lab under mixed TCP/UDP, IPv4/IPv6 client traffic while
# an operator adds or removes a real every 100 ms, changes weights, and
# reals' servers fail and recover; then no goroutine, file or map-entry
# growth, no panic, no unexplained client error. Root. SOAK_DURATION=1m
# for a short run; SOAK_TIMEOUT must exceed it by 4 minutes. The figures
# go to $(SOAK_REPORT) (for BENCHMARKS.md, "Soak").
SOAK_DURATION ?= 10m
SOAK_TIMEOUT  ?= 30m
SOAK_REPORT   ?= $(BIN)/soak-report.md
soak: deps
	@mkdir -p $(dir $(SOAK_REPORT))
	SOAK_DURATION=$(SOAK_DURATION) SOAK_REPORT=$(abspath $(SOAK_REPORT)) \
		$(GO) test -tags soak -count=1 -v -run '^TestSoak$$' -timeout $(SOAK_TIMEOUT) ./test/soak/

clean:
	rm -rf $(BIN)

# Packaging (packaging/README.md): the .deb, built with nfpm into
# dist/vipcast_<version>-1_<arch>.deb, and its tests (also run by `make test`).
.PHONY: deb test-deb clean-deb
deb: deps
	VERSION=$(VERSION) GO=$(GO) scripts/build-deb.sh

test-deb: deps
	VERSION=$(VERSION) GO=$(GO) scripts/test-deb.sh

clean-deb:
	rm -rf dist/build dist/vipcast_*.deb

# Every Go fuzz target for 120 s each (`make test` runs them for 10 s each).
.PHONY: fuzz
fuzz: deps
	scripts/fuzz.sh 120
