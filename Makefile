# byodrop: the project's vocabulary. `make help` lists the targets.
#
# Every Go command here works with GOFLAGS unset; flags that matter are
# spelled out. Tools (versitygw, aws-lambda-rie, staticcheck) are pinned in
# tools/go.mod and built into ./bin by `make tools`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN_DIR   := $(CURDIR)/bin
BUILD_DIR := $(CURDIR)/build

# Lambda bootstraps: provided.al2023 on arm64, a static binary speaking only
# the Runtime API (lambda.norpc), reproducible (-trimpath, no build id, no VCS
# stamp) and stripped.
LAMBDA_GOOS   := linux
LAMBDA_GOARCH := arm64
LAMBDA_FLAGS  := -tags lambda.norpc -trimpath -buildvcs=false -ldflags='-s -w -buildid='

# `go test` bounds: the whole suite must stay well under ten minutes on two cores.
TEST_TIMEOUT ?= 8m
FUZZTIME     ?= 10s
FUZZPKGS     ?= ./...
# 1: a missing tool (versitygw, aws-lambda-rie, qemu-aarch64-static) fails
# the tests that need it; 0: they are skipped with the reason.
REQUIRE_TOOLS ?= 1
TEST_ENV := BYODROP_BIN_DIR=$(BIN_DIR) BYODROP_REQUIRE_TOOLS=$(REQUIRE_TOOLS)

TOOLS := $(BIN_DIR)/versitygw $(BIN_DIR)/aws-lambda-rie $(BIN_DIR)/staticcheck

.PHONY: help tools build build-IngestFunction build-FinalizeFunction build-DiscoverFunction test fuzz \
	lint dashboard invoke-ingest invoke-finalize invoke-discover local status bench soak replay deploy clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-24s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "  Variables: EVENT=events/... (invoke-*), FUZZTIME=$(FUZZTIME), TEST_TIMEOUT=$(TEST_TIMEOUT), REQUIRE_TOOLS=$(REQUIRE_TOOLS), SIZES=$(SIZES) LOAD=$(LOAD) (bench)"

# --- tools ----------------------------------------------------------------

tools: $(TOOLS) ## build the pinned tools into ./bin (only when missing or outdated)

# One `go build` makes all three; rebuilt when the pins change. The touch
# keeps make's view right when go decides a binary is already up to date.
$(TOOLS) &: tools/go.mod tools/go.sum
	@echo "==> building pinned tools into $(BIN_DIR) (versitygw, aws-lambda-rie, staticcheck)"
	cd tools && $(GO) build -o $(BIN_DIR)/ tool
	@touch $(TOOLS)

# --- build ----------------------------------------------------------------

build: ## build the three arm64 bootstraps into build/<Function>/bootstrap
	$(MAKE) --no-print-directory build-IngestFunction ARTIFACTS_DIR=$(BUILD_DIR)/IngestFunction
	$(MAKE) --no-print-directory build-FinalizeFunction ARTIFACTS_DIR=$(BUILD_DIR)/FinalizeFunction
	$(MAKE) --no-print-directory build-DiscoverFunction ARTIFACTS_DIR=$(BUILD_DIR)/DiscoverFunction

# `sam build` calls these with ARTIFACTS_DIR set (Metadata: BuildMethod: makefile).
build-IngestFunction: ## sam build hook: ingest bootstrap into $(ARTIFACTS_DIR)
	$(call lambda-build,./functions/ingest)

build-FinalizeFunction: ## sam build hook: finalize bootstrap into $(ARTIFACTS_DIR)
	$(call lambda-build,./functions/finalize)

build-DiscoverFunction: ## sam build hook: discover bootstrap into $(ARTIFACTS_DIR)
	$(call lambda-build,./functions/discover)

define lambda-build
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it; or use make build)"; exit 1; }
	mkdir -p "$(ARTIFACTS_DIR)"
	CGO_ENABLED=0 GOOS=$(LAMBDA_GOOS) GOARCH=$(LAMBDA_GOARCH) \
		$(GO) build $(LAMBDA_FLAGS) -o "$(ARTIFACTS_DIR)/bootstrap" $(1)
endef

# --- test -----------------------------------------------------------------

test: tools ## run every test, then a bounded fuzz run of each fuzz target
	$(TEST_ENV) $(GO) test -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz

# Fuzz targets are found with `go test -list`; each runs for FUZZTIME (go
# allows one -fuzz target per package per run). Go's fuzz coordinator can
# fail a target on its own -fuzztime deadline (go.dev/issue/75804): one
# FAIL whose whole message is "context deadline exceeded", and no failing
# input written. That run is counted as a pass, and says so; any other
# failure fails.
fuzz: ## run each Fuzz* target for FUZZTIME (default 10s)
	@set -euo pipefail; \
	targets=$$($(GO) test -list '^Fuzz' $(FUZZPKGS) | awk '/^Fuzz/ {names = names " " $$1; next} /^ok/ {if (names != "") print $$2 names; names = ""}'); \
	if [ -z "$$targets" ]; then echo "no fuzz targets"; exit 0; fi; \
	log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	while read -r pkg names; do \
		for name in $$names; do \
			echo "==> fuzz $$pkg $$name for $(FUZZTIME)"; \
			if $(TEST_ENV) $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" 2>&1 | tee "$$log"; then continue; fi; \
			if grep -q 'Failing input written to' "$$log" || \
				! awk '/^--- FAIL: / {fails++; getline; if ($$0 == "    context deadline exceeded") deadline++} END {exit !(fails == 1 && deadline == 1)}' "$$log"; then \
				exit 1; \
			fi; \
			echo "==> fuzz $$name: only the fuzz coordinator's own deadline failed (go.dev/issue/75804), no failing input; counted as a pass"; \
		done; \
	done <<< "$$targets"

# Placeholder name for the long-running test; not part of `make test`.
soak: tools ## long soak test (-tags soak), up to 30 minutes
	$(TEST_ENV) $(GO) test -count=1 -run '^TestSoak$$' -tags soak ./internal/reliability/ -v -timeout 30m

# --- lint -----------------------------------------------------------------

lint: tools ## gofmt, go vet, staticcheck (pinned), cfn-lint when present
	@echo "==> gofmt"; out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	@echo "==> go vet"; $(GO) vet ./...
	@echo "==> staticcheck"; $(BIN_DIR)/staticcheck ./...
	@if command -v cfn-lint >/dev/null 2>&1; then echo "==> cfn-lint ($$(cfn-lint --version))"; cfn-lint template.yaml; \
	else echo "cfn-lint not found; skipping template lint"; fi

# The dashboard's body in template.yaml is generated from internal/metrics;
# the template test fails when it is stale.
dashboard: ## rewrite template.yaml's DashboardBody from the metrics the code writes
	$(GO) test -count=1 -run '^TestTemplateDashboardIsGenerated$$' ./internal/deploytest/ -update

# --- run locally ----------------------------------------------------------

# One invocation of a host build of the bootstrap under the runtime emulator,
# against a local S3 server and the Graph emulator, settings from events/env.json.
invoke-ingest: EVENT ?= events/s3-put.json
invoke-ingest: tools ## invoke ingest once: make invoke-ingest EVENT=events/s3-put.json
	$(GO) run ./cmd/byodrop-local invoke -function ingest $(foreach e,$(EVENT),-event $(e)) -env events/env.json

invoke-finalize: EVENT ?= events/scheduled.json
invoke-finalize: tools ## invoke finalize once with events/scheduled.json (or EVENT=...)
	$(GO) run ./cmd/byodrop-local invoke -function finalize $(foreach e,$(EVENT),-event $(e)) -env events/env.json

invoke-discover: EVENT ?= events/scheduled.json
invoke-discover: tools ## invoke discover once with events/scheduled.json (or EVENT=...)
	$(GO) run ./cmd/byodrop-local invoke -function discover $(foreach e,$(EVENT),-event $(e)) -env events/env.json

# KEEP=1: after the run, the S3 server keeps what it left until Ctrl-C, its
# settings in build/local-s3.env, for `make status LOCAL=1` in another shell.
LOCAL_S3_ENV := $(BUILD_DIR)/local-s3.env

local: tools ## the whole pipeline on this machine, no AWS account needed (KEEP=1: keep its S3 server for make status)
	$(GO) run ./cmd/byodrop-local run $(if $(filter 1,$(KEEP)),-keep $(LOCAL_S3_ENV))

# Credentials and region come from the AWS SDK's settings (AWS_PROFILE,
# AWS_REGION). LOCAL=1 reads the S3 server that `make local KEEP=1` keeps.
status: ## where things stand: make status BUCKET=<DropBucketName> [QUEUE_URL=<FailureQueueUrl>] [STATUS_ARGS='-days 7 -json'] (LOCAL=1: make local KEEP=1's bucket)
	@set -euo pipefail; \
	if [ "$(LOCAL)" = 1 ]; then \
		test -f $(LOCAL_S3_ENV) || { echo "$(LOCAL_S3_ENV) not found: run make local KEEP=1 first, and leave it running"; exit 2; }; \
		set -a; . $(LOCAL_S3_ENV); set +a; \
	fi; \
	$(GO) run ./cmd/byodrop status $(if $(BUCKET),-bucket '$(BUCKET)') $(if $(QUEUE_URL),-queue-url '$(QUEUE_URL)') $(STATUS_ARGS)

# File sizes of the throughput runs, in MiB; fewer or smaller ones shorten
# the run (make bench SIZES=10,100). The 1 GiB file needs about 2 GiB of
# temporary disk while it runs.
SIZES ?= 10,100,1024
# LOAD=1 keeps one core busy with a CPU-bound process for the whole run, so
# that the ratios are measured with the cores contended, as in Lambda; its
# figures go into their own part of docs/benchmarks.md.
LOAD ?= 0

bench: tools ## measure throughput, CPU, memory, requests, cold start, sizes into docs/benchmarks.md (SIZES=10,100,1024 LOAD=0)
	BYODROP_BIN_DIR=$(BIN_DIR) $(GO) run ./cmd/bench -sizes $(SIZES) -load $(LOAD)

# Credentials, region and endpoints come from the AWS SDK's settings
# (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_LAMBDA).
replay: ## re-drive failed ingest events: make replay QUEUE_URL=<FailureQueueUrl> FUNCTION=<IngestFunction name> [REPLAY_ARGS='-dry-run -max 10']
	@test -n "$(QUEUE_URL)" -a -n "$(FUNCTION)" || { echo "usage: make replay QUEUE_URL=<FailureQueueUrl> FUNCTION=<IngestFunction name> [REPLAY_ARGS='-dry-run -max N']"; exit 2; }
	$(GO) run ./cmd/replay -queue-url '$(QUEUE_URL)' -function '$(FUNCTION)' $(REPLAY_ARGS)

# --- deploy (not run in CI) -----------------------------------------------

deploy: ## sam build && sam deploy, with samconfig.toml (needs the SAM CLI and AWS credentials)
	@command -v sam >/dev/null 2>&1 || { echo "sam (the AWS SAM CLI) not found; install it to deploy"; exit 1; }
	sam build
	sam deploy

clean: ## remove build outputs (not ./bin)
	rm -rf $(BUILD_DIR) .aws-sam
