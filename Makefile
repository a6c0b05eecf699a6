# Convenience targets over CMake; `make help` lists them. Each build
# directory is configured once, on first use: `make clean` to reconfigure.

BUILD         ?= build
BUILD_ASAN    ?= build-asan
BUILD_TSAN    ?= build-tsan
BUILD_RELEASE ?= build-release
JOBS          ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS    ?=
CTEST_ARGS    ?=

# $(call configure,<dir>,<cmake args>): configure <dir> unless already done.
configure = test -f $(1)/CMakeCache.txt || cmake -S . -B $(1) $(2) $(CMAKE_ARGS)
compile   = cmake --build $(1) -j$(JOBS)
# Sanitized tests are memory-heavy, so ctest runs at most two at once there.
ctest_jobs = $(if $(shell grep -qsx 'TR_SANITIZER:STRING=none' $(1)/CMakeCache.txt \
               || echo sanitized),$(if $(filter 1,$(JOBS)),1,2),$(JOBS))
ctest      = ctest --test-dir $(1) --output-on-failure -j$(call ctest_jobs,$(1)) $(CTEST_ARGS)

ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1$(if \
           $(wildcard tests/tsan.supp), suppressions=$(CURDIR)/tests/tsan.supp)"
# gcc 12's TSan cannot place its shadow memory when the kernel randomises
# mmap with more than 28 bits (newer kernels/distros); run without ASLR then.
TSAN_WRAP = $(shell [ "$$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ] \
              && echo setarch $$(uname -m) -R)

# cmake --build runs make below us; keep its output free of directory noise.
MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := build
.PHONY: deps build check demo asan tsan bench install clean format help

deps:
	@scripts/deps.sh

build: deps
	@$(call configure,$(BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo)
	$(call compile,$(BUILD))

check: build
	$(call ctest,$(BUILD))

demo: build
	@test -x $(BUILD)/examples/fleet/fleet || \
	    { echo "no $(BUILD)/examples/fleet/fleet: is examples/fleet/CMakeLists.txt there?" >&2; exit 1; }
	$(BUILD)/examples/fleet/fleet

asan: deps
	@$(call configure,$(BUILD_ASAN),-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTR_SANITIZER=address)
	$(call compile,$(BUILD_ASAN))
	$(ASAN_ENV) $(call ctest,$(BUILD_ASAN))

tsan: deps
	@$(call configure,$(BUILD_TSAN),-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTR_SANITIZER=thread)
	$(call compile,$(BUILD_TSAN))
	$(TSAN_ENV) $(TSAN_WRAP) $(call ctest,$(BUILD_TSAN))

bench: deps
	@$(call configure,$(BUILD_RELEASE),-DCMAKE_BUILD_TYPE=Release -DTR_BUILD_TESTS=OFF)
	$(call compile,$(BUILD_RELEASE))
	@test -x scripts/bench.sh || \
	    { echo "scripts/bench.sh is missing or not executable; nothing to run" >&2; exit 1; }
	scripts/bench.sh $(BUILD_RELEASE)/bench/troupe-bench

# Installs under the prefix chosen at configure time (CMAKE_ARGS=
# -DCMAKE_INSTALL_PREFIX=...); DESTDIR=/tmp/stage stages it elsewhere.
install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_RELEASE)

format:
	git ls-files -z -- '*.c' '*.h' | xargs -0 -r clang-format -i

help:
	@echo "make [target] [BUILD=dir] [JOBS=n] [CMAKE_ARGS=...] [CTEST_ARGS=...]"
	@echo "  deps     install missing Debian packages (scripts/deps.sh)"
	@echo "  build    configure (once) and build in $(BUILD) [default]"
	@echo "  check    build, then run every test; CTEST_ARGS='-L unit' picks a label"
	@echo "  demo     build, then run examples/fleet (a supervised fleet under faults)"
	@echo "  asan     build and test in $(BUILD_ASAN) with ASan+UBSan"
	@echo "  tsan     build and test in $(BUILD_TSAN) with TSan (tests/tsan.supp)"
	@echo "  bench    Release build in $(BUILD_RELEASE), then scripts/bench.sh"
	@echo "  install  cmake --install $(BUILD) (honours DESTDIR)"
	@echo "  clean    remove every build directory"
	@echo "  format   clang-format -i every tracked .c and .h file"
