# Huddle — the two commands:
#   make run    run a node (embedded store under ~/.huddle, nothing else to install)
#   make test   the whole test suite (installs the real test clients it needs first)

CARGO ?= cargo

.PHONY: run test test-deps bench verify fmt clippy release fuzz

run:
	$(CARGO) run --release -p huddle -- serve

release:
	$(CARGO) build --release -p huddle

# Real clients and servers the tests drive (from the registries); idempotent. The only
# place they are installed: `cargo test` never installs anything (tests/README.md).
# PostgreSQL: the store tests start throwaway servers from /usr/lib/postgresql/*/bin
# (or use HUDDLE_TEST_POSTGRES_URL). Redis: the cluster tests start throwaway
# `redis-server`s (or use HUDDLE_TEST_REDIS_URL).
test-deps:
	python3 -m pip install --quiet -r tests/grpc/requirements.txt
	tests/mcp/deps.sh install
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y --no-install-recommends postgresql)
	@command -v redis-server >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y --no-install-recommends redis-server)
	python3 -m pip install --quiet -r deploy/requirements-test.txt

# The black-box suite runs a second time with every node on PostgreSQL (one throwaway
# server, a database per node). Skipped there: the tests that are SQLite-only by nature
# (they read the data dir's files) or name their store themselves (they ran already).
PG_PASS_SKIP = --skip store_copy:: --skip pg_faults:: \
	--skip privacy::passwords_and_tokens_are_not_stored_in_plain_text

# And a third time with every server a 3-node cluster (one database, one Redis; the
# client spreads its requests over the nodes). Skipped there, besides the above, the
# tests that are single-node by nature:
#   durability, sent_keys  restart one node on its own data dir;
#   shutdown               one process's own SIGTERM drain (the cluster's handover on
#                          SIGTERM is tests/cluster/membership);
#   memory, ops            one process's RSS, metrics, logs and readiness, while the
#                          requests are spread over three;
#   passwords              the throttles count per node (each node's password gate);
#   limits::live_streams_over_the_node_limit_are_refused_naming_it
#                          the stream limit is per node, while the streams are spread;
#   push::queued_pushes_are_bounded_node_wide_and_dropped_ones_stay_unread
#                          the push bound is per node and its log line is the owner's,
#                          while the test reads one node's log;
#   deploy                 no server at all (it ran already).
CLUSTER_PASS_SKIP = $(PG_PASS_SKIP) --skip durability:: --skip sent_keys:: \
	--skip shutdown:: --skip memory:: --skip ops:: --skip passwords:: --skip deploy:: \
	--skip limits::live_streams_over_the_node_limit_are_refused_naming_it \
	--skip push::queued_pushes_are_bounded_node_wide_and_dropped_ones_stay_unread

test: test-deps
	$(CARGO) test --workspace --all-targets
	HUDDLE_TEST_STORE=postgres $(CARGO) test -p huddle --test blackbox -- $(PG_PASS_SKIP)
	HUDDLE_TEST_STORE=cluster $(CARGO) test -p huddle --test blackbox -- $(CLUSTER_PASS_SKIP)

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

# Fuzzing (not part of `test`): each target for FUZZ_SECS seconds. New finds go to
# fuzz/target/corpus/ (the kept corpus, fuzz/corpus/, is only read); crashes to
# fuzz/artifacts/. libFuzzer needs rustc's unstable flags: RUSTC_BOOTSTRAP lets the
# stable toolchain take them. Huddle's crates forbid `unsafe`, so a sanitizer would
# mostly watch dependencies: none by default, for speed (FUZZ_SANITIZER=address for one).
FUZZ_SECS ?= 60
FUZZ_SANITIZER ?= none
FUZZ_TARGETS ?= room a2a_envelope mcp_message sse_resume

fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p target/corpus/$$t && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer $(FUZZ_SANITIZER) $$t target/corpus/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECS) -timeout=10 -print_final_stats=1 || exit 1; \
	done
