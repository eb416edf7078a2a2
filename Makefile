# aiops: make deps | build | test | unit | lint | bench | run | demo | correlate-eval
# Every target works on a fresh Debian machine: test and run install what
# they need first (scripts/deps.sh is idempotent and quick when done).

SERVICES := ingest logminer detector correlator notifier writer aiops
GO       ?= go
PKGS     := ./pkg/... $(addprefix ./services/,$(addsuffix /...,$(SERVICES)))
# The packages whose goroutines share delivery state (the consumer and its
# in-progress signals, the stage runner's drain, the notifier's lanes and
# timers, the correlator service's leases): make test runs them again
# under the race detector.
RACE_PKGS := ./pkg/bus/... ./pkg/stage/... ./services/notifier/... ./services/correlator/...
BENCH    ?= .
BENCHTIME ?= 1s
# What `aiops version` prints: the nearest tag, commits since, the commit,
# -dirty for uncommitted changes (the commit alone before the first tag).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
# -buildvcs=true: in a workspace a plain go build stamps no commit.
BUILDFLAGS := -buildvcs=true -ldflags "-X github.com/aiops-dev/aiops/pkg/service.Version=$(VERSION)"

.PHONY: deps build test unit lint bench run demo clean tidy fuzz-smoke correlate-eval

deps:
	scripts/deps.sh

# Every service that has a binary (services/NAME/cmd/NAME) into bin/NAME.
build:
	@mkdir -p bin
	@for s in $(SERVICES); do \
		[ -d services/$$s/cmd/$$s ] || continue; \
		echo "go build $(BUILDFLAGS) -o bin/$$s ./services/$$s/cmd/$$s"; \
		$(GO) build $(BUILDFLAGS) -o bin/$$s ./services/$$s/cmd/$$s || exit 1; \
	done

# The unit and integration tests, against a real JetStream (embedded) and a
# real ClickHouse (local process, or $$AIOPS_TEST_CLICKHOUSE_DSN); the schema
# and the SQL cookbook also run on a current ClickHouse through libchdb
# (scripts/chdb.sh fetches it; without it those checks skip).
test: deps lint
	scripts/check-workspace.sh --standalone
	AIOPS_TEST_CHDB_LIB="$${AIOPS_TEST_CHDB_LIB:-$$(scripts/chdb.sh || true)}" \
		$(GO) test -count=1 -timeout 45m $(PKGS)
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)
	$(MAKE) fuzz-smoke

# A few seconds of coverage-guided fuzzing of every gateway decoder, the
# structure-aware targets (deep, wide and large inputs) included, on top
# of their seed corpora that the tests run; docs/security.md has longer runs.
FUZZTIME ?= 3s
DECODE_FUZZ := FuzzOTLPLogsShape FuzzRemoteWriteShape FuzzEvents FuzzNDJSON FuzzAlertmanager FuzzPrometheusAlerts \
	FuzzRemoteWrite FuzzRemoteWriteProto FuzzOTLPLogs FuzzOTLPMetrics FuzzChanges
# Go 1.26's fuzzing engine can fail a target with a bare "context deadline
# exceeded" when -fuzztime ends while a worker is mid-input (golang/go#75804,
# fixed in Go 1.27): such a run, with no failing input written, runs once
# more; any other failure fails at once.
fuzz-smoke:
	@log=$$(mktemp); for f in $(DECODE_FUZZ); do \
		echo "fuzz $$f for $(FUZZTIME)"; \
		for try in 1 2; do \
			if $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./services/ingest/decode/ >$$log 2>&1; then break; fi; \
			if [ $$try = 1 ] && grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
				echo "fuzz $$f: the engine's deadline race (golang/go#75804), no failing input: once more"; continue; \
			fi; \
			cat $$log; rm -f $$log; exit 1; \
		done; \
	done; rm -f $$log

# Unit tests only: no servers.
unit:
	$(GO) test -count=1 -short $(PKGS)

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@unformatted=$$(gofmt -l pkg services); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

bench: deps
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem $(PKGS)

run: deps build
	scripts/run.sh

# The correlator, defaults only, on every storm generator's held-out half
# (pkg/correlate/QUALITY.md): the storms go to data/storms/GENERATOR/, and
# each generator's mean row of `aiops correlate eval` is printed.
HELD_OUT := scenario:101-110 scenario-dense:101-110 crossgen:21-40 blindgen:21-40 \
	fleetgen:21-40 specgen:21-40 stagegen:21-40 opsgen:21-40 issuegen:21-40 \
	wordgen:21-40
correlate-eval: build
	@bin/aiops correlate eval -h 2>&1 | grep -q STORM || exit 1
	@header=1; for gs in $(HELD_OUT); do g=$${gs%%:*}; seeds=$${gs#*:}; \
		rm -rf data/storms/$$g; \
		bin/aiops correlate generate --generator $$g --seeds $$seeds --dir data/storms/$$g 2>/dev/null || exit 1; \
		out=$$(bin/aiops correlate eval data/storms/$$g/* 2>/dev/null) || exit 1; \
		if [ $$header = 1 ]; then printf '%-24s%s\n' "generator, seeds" "$$(echo "$$out" | head -1 | sed 's/^ *storm//')"; header=0; fi; \
		printf '%-24s%s\n' "$$g $$seeds" "$$(echo "$$out" | tail -1 | sed 's/^ *mean of [0-9]*//')"; \
	done

# aiops demo against the ClickHouse make run uses (data/clickhouse, started
# here and stopped after, Ctrl-C included, when it was not running), or
# $$AIOPS_STORE__DSN; the demo works in its own database, aiops_demo, and
# writes data/demo/. scripts/run.sh --demo does what run.sh does for run.
demo: deps build
	scripts/run.sh --demo

tidy:
	@for d in pkg $(addprefix services/,$(SERVICES)); do (cd $$d && GOWORK=off $(GO) mod tidy) || exit 1; done
	$(GO) work sync

clean:
	rm -rf bin data
