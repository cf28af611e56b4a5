# Huddle — the two commands:
#   make run    run a node (embedded store under ~/.huddle, nothing else to install)
#   make test   the whole test suite (installs the real test clients it needs first)

CARGO ?= cargo

.PHONY: run test test-deps bench verify fmt clippy release

run:
	$(CARGO) run --release -p huddle -- serve

release:
	$(CARGO) build --release -p huddle

# Real clients the tests drive (from the registries); idempotent.
test-deps:
	python3 -m pip install --quiet -r tests/grpc/requirements.txt

test: test-deps
	$(CARGO) test --workspace --all-targets

bench: release
	./scripts/bench.sh

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

verify:
	$(CARGO) fmt --all -- --check
	$(MAKE) clippy
	$(MAKE) test
