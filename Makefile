# CodeExec: `make run` starts the all-in-one, `make test` runs every module's tests.
SHELL := /bin/bash
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

MODULES := shared shared/embedded accounts ledger runner edge client deploy
SERVICES := edge runner ledger accounts
BIN := bin
GOFLAGS_TEST ?= -race -count=1 -timeout 30m

.PHONY: all prepare build playground run test images bench lint clean

all: build

build: playground
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/codeexec ./deploy/cmd/codeexec
	@for s in $(SERVICES); do echo "$(GO) build -o $(BIN)/$$s ./$$s/cmd/$$s"; $(GO) build -o $(BIN)/$$s ./$$s/cmd/$$s || exit 1; done
	$(GO) build -o $(BIN)/ce ./client/cmd/ce

# The web playground's bundle is committed; this rebuilds it (npm ci, esbuild) only when its
# sources changed, so a checkout with no node still builds.
playground:
	edge/internal/playground/web/build.sh

# prepare: packages and a running Docker engine (deploy/prepare-host); near instant when
# the machine is ready, and says what to run where it cannot do it itself.
prepare:
	deploy/prepare-host

images: prepare
	docker-images/build.sh

run: prepare build images
	./$(BIN)/codeexec

# The suite runs with the runner's defaults: crun, driven by the direct engine. The sandbox's
# and the pool's tests run again with crun through Docker (CODEEXEC_ENGINE=docker) and
# under gVisor (runsc, through Docker), which operators may choose (CODEEXEC_RUNTIME);
# without -race, which tests the Go code, not the runtime, and one package at a time:
# gVisor is slow to create processes, and the two compete for the CPU.
test: prepare images
	$(GO) test $(GOFLAGS_TEST) $(addprefix ./,$(addsuffix /...,$(MODULES)))
	CODEEXEC_ENGINE=docker $(GO) test -count=1 -p 1 -timeout 30m ./runner/internal/sandbox/ ./runner/internal/pool/
	CODEEXEC_RUNTIME=runsc $(GO) test -count=1 -p 1 -timeout 30m ./runner/internal/sandbox/ ./runner/internal/pool/

bench: images
	$(GO) test -run '^$$' -bench Execute -benchtime 20x -timeout 30m ./deploy/...
	$(GO) test -run '^$$' -bench LedgerCapacity -benchtime 1x -timeout 30m ./deploy/integration/

lint:
	@unformatted=$$(gofmt -l $(MODULES)); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(addprefix ./,$(addsuffix /...,$(MODULES)))

clean:
	rm -rf $(BIN)
