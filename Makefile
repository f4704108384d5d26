# Entry points: `make run` (sluice in front of a scratch MariaDB) and `make test` (everything CI runs).
#
#   make deps         install missing Debian packages (build + test)
#   make build        Release build in build/
#   make run          scratch MariaDB + sluice with conf/sluice.yaml; CONFIG=path runs your config
#   make unit         unit tests (ctest label `unit`)
#   make integration  integration tests against real MariaDB servers (ctest label `integration`)
#   make test         deps, build, all ctest tests, ASan/UBSan unit tests, a short fuzz run
#   make asan         unit tests built with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   make fuzz         libFuzzer targets built with clang (build-fuzz/), FUZZ_SECONDS each (default 60)
#   make sanitized-integration
#                     the integration tests against sluice built with ASan+UBSan, then with TSan
#                     (SANITIZERS="address thread" by default; not part of `make test`)
#   make bench        direct vs HAProxy vs sluice benchmark (tests/bench/run.sh)
#   make format       clang-format -i on every .h/.cc
#   make clean        remove the build trees
#   make docker-test  build docker/Dockerfile with podman on a debootstrap'ed base and run it (scripts/docker-test.sh)
#   make package      Debian package with CPack (build-pkg/sluice_*.deb)
#   make package-test build the package, install it into a clean bookworm root, check it (scripts/package-test.sh)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

NPROC := $(shell nproc)
BUILD_DIR := build
ASAN_DIR := build-asan
TSAN_DIR := build-tsan
FUZZ_DIR := build-fuzz
FUZZ_SECONDS ?= 60
# Integration tests start a MariaDB (and a sluice) each and mostly wait on I/O,
# so two at a time keeps a 2-core machine busy without starving any of them.
TEST_JOBS ?= 2
CONFIG ?=

SOURCE_DIRS := common proxy tests
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 \
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: deps build run unit integration test asan fuzz sanitized-integration bench format clean

deps:
	scripts/deps.sh all

build:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD_DIR) -j$(NPROC)

run:
	BUILD_DIR=$(abspath $(BUILD_DIR)) scripts/run.sh $(if $(CONFIG),--config $(CONFIG))

unit: build
	ctest --test-dir $(BUILD_DIR) -L unit --output-on-failure -j$(NPROC)

integration: build
	ctest --test-dir $(BUILD_DIR) -L integration --output-on-failure -j$(TEST_JOBS)

# Every stage runs even when an earlier one fails, so one run reports all of
# them; the exit status is non-zero if any failed.
test:
	scripts/deps.sh all
	$(MAKE) build
	failed=""; \
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(TEST_JOBS) || failed="$$failed ctest"; \
	$(MAKE) asan || failed="$$failed asan"; \
	$(MAKE) fuzz FUZZ_SECONDS=15 || failed="$$failed fuzz"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: all passed"

# Only the unit test executables are built here: they are what the sanitizers are for,
# and building everything twice would double `make test`'s compile time.
asan:
	cmake -S . -B $(ASAN_DIR) -DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	targets="common_tests"; \
	if cmake --build $(ASAN_DIR) --target help | grep -w proxy_tests >/dev/null; then targets="$$targets proxy_tests"; fi; \
	cmake --build $(ASAN_DIR) -j$(NPROC) --target $$targets; \
	for t in $$targets; do \
	  echo "== $$t (ASan+UBSan)"; \
	  $(SANITIZER_ENV) $(ASAN_DIR)/tests/unit/$$t; \
	done

fuzz:
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -DSLUICE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	targets=$$(cmake --build $(FUZZ_DIR) --target help | grep -o 'fuzz_[A-Za-z0-9_]*' | sort -u | tr '\n' ' '); \
	if [ -z "$$targets" ]; then echo "no fuzz_* targets defined" >&2; exit 1; fi; \
	cmake --build $(FUZZ_DIR) -j$(NPROC) --target $$targets; \
	for t in $$targets; do \
	  corpus=$(FUZZ_DIR)/corpus/$$t; mkdir -p $$corpus; \
	  seeds=tests/fuzz/corpus/$$t; [ -d $$seeds ] || seeds=; \
	  echo "== $$t for $(FUZZ_SECONDS) s"; \
	  $(SANITIZER_ENV) $(FUZZ_DIR)/tests/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 $$corpus $$seeds 2>$(FUZZ_DIR)/$$t.log \
	    || { tail -n 60 $(FUZZ_DIR)/$$t.log; exit 1; }; \
	  tail -n 12 $(FUZZ_DIR)/$$t.log; \
	done

# The integration tests (built normally, in BUILD_DIR) drive a sluice built with a
# sanitizer: every session path against a real MariaDB, with the sanitizer's reports
# (and LeakSanitizer's at each sluice's exit) collected in <dir>/reports. Left out: the
# tests that measure sluice's own RSS or descriptor limits, which a sanitizer's
# runtime changes, and those that preload the EINTR shim.
SANITIZERS ?= address thread
SANITIZED_SKIP := eintr|RSS|file descriptors|ten 200 MiB|twenty 15 MiB|memory bounded
sanitized-integration: build
	failed=""; \
	for s in $(SANITIZERS); do \
	  case $$s in \
	    address) dir=$(ASAN_DIR); flag=-DSLUICE_SANITIZE=ON ;; \
	    thread)  dir=$(TSAN_DIR); flag=-DSLUICE_SANITIZE_THREAD=ON ;; \
	    *) echo "unknown sanitizer $$s (address, thread)" >&2; exit 2 ;; \
	  esac; \
	  cmake -S . -B $$dir $$flag -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null; \
	  cmake --build $$dir -j$(NPROC) --target sluice; \
	  reports=$$(realpath $$dir)/reports; rm -rf $$reports; mkdir -p $$reports; \
	  echo "== integration tests against $$dir/proxy/sluice ($$s)"; \
	  SLUICE_BINARY=$$(realpath $$dir)/proxy/sluice \
	  ASAN_OPTIONS=detect_leaks=1:log_path=$$reports/asan \
	  UBSAN_OPTIONS=print_stacktrace=1:log_path=$$reports/ubsan \
	  TSAN_OPTIONS=log_path=$$reports/tsan:second_deadlock_stack=1 \
	  ctest --test-dir $(BUILD_DIR) -L integration -E "$(SANITIZED_SKIP)" -j$(TEST_JOBS) \
	    --output-on-failure || failed="$$failed $$s:tests"; \
	  if compgen -G "$$reports/*" >/dev/null; then \
	    head -n 60 $$reports/*; failed="$$failed $$s:reports"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "sanitized-integration: FAILED:$$failed" >&2; exit 1; fi; \
	echo "sanitized-integration: no sanitizer reports, all tests passed"

bench: build
	@test -x tests/bench/run.sh || { echo "tests/bench/run.sh does not exist yet" >&2; exit 1; }
	tests/bench/run.sh

format:
	@command -v clang-format >/dev/null || { echo "clang-format missing: apt-get install clang-format" >&2; exit 1; }
	find $(SOURCE_DIRS) \( -name '*.h' -o -name '*.cc' \) -print0 | xargs -0 clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR) $(FUZZ_DIR)

# Deployment (issue 7). Not part of `make test`: docker-test downloads a Debian base once
# and builds an image (minutes), see README "Operations".
PKG_DIR := build-pkg
.PHONY: docker-test package package-test

docker-test:
	scripts/docker-test.sh

package:
	scripts/deps.sh package
	cmake -S . -B $(PKG_DIR) -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr
	cmake --build $(PKG_DIR) -j$(NPROC) --target sluice
	rm -f $(PKG_DIR)/sluice_*.deb $(PKG_DIR)/sluice_*.deb.sha256
	cd $(PKG_DIR) && cpack -G DEB
	@ls -1 $(PKG_DIR)/sluice_*.deb

package-test: package
	scripts/package-test.sh $(PKG_DIR)/sluice_*.deb
