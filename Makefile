# The two commands a new machine needs: `make demo` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
BUF := tools/node_modules/.bin/buf

.PHONY: setup demo test lint protos-check pytest clients-test bench-smoke grpcurl clean

setup: .venv/.synced tools/node_modules/.installed tests/browser/node_modules/.installed tests/dropin/node_modules/.installed

$(UV):
	python3 -m pip install --quiet --user "uv==$(UV_VERSION)"

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on our CI machines and in the image), Python would
# otherwise compile every dependency from source at every start: 0.7 s of CPU per sidecar process here.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

tools/node_modules/.installed: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --silent
	touch $@

tests/browser/node_modules/.installed: tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --silent
	touch $@

# Segment's own Node library, unmodified, for the drop-in tests of the HTTP intake (tests/dropin).
tests/dropin/node_modules/.installed: tests/dropin/package.json tests/dropin/package-lock.json
	cd tests/dropin && npm ci --no-audit --no-fund --silent
	touch $@

## Run the demo: a local collector, a sidecar, and an email tool's QA flow (`make demo ARGS=--keep-running` keeps
## it serving, debugger page included, until Ctrl-C).
ARGS ?=
demo: setup
	.venv/bin/segment-sidecar demo $(ARGS)

## Run every test: lint, types, proto checks, the Python suite, every client's tests (all run; failures summed up).
test: setup
	UV=$(UV) scripts/check_all.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	cd protos && ../$(BUF) lint

protos-check: setup
	scripts/gen_protos.sh --check
	.venv/bin/python scripts/gen_sync_client.py --check
	scripts/check_breaking.sh

pytest: setup
	.venv/bin/pytest -q

clients-test: setup
	scripts/test_clients.sh

## Every benchmark's --quick smoke run, as bench/README.md writes it (a few minutes; CI runs it after `make test`).
bench-smoke: setup
	.venv/bin/python scripts/check_documented_commands.py --bench

## grpcurl (pinned), for calling the sidecar by reflection; needs Go. .ci/run installs it for the reflection test.
GRPCURL_VERSION := v1.9.3
grpcurl: tools/go-bin/grpcurl
tools/go-bin/grpcurl:
	GOBIN=$(CURDIR)/tools/go-bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

clean:
	rm -rf .venv tools/node_modules tests/browser/node_modules tests/dropin/node_modules .mypy_cache .ruff_cache .pytest_cache
