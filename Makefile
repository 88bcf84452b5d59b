# trit — one binary (build/trit), one library (build/libtrit.a).
# Targets: all test demo asan fuzz fuzz-long bench format clean
NLC_VERSION ?= 3.22.1
TRIT_CACHE  ?= $(HOME)/.cache/trit
REF         ?= $(TRIT_CACHE)/llama.cpp-$(NLC_VERSION)
export TRIT_NLC_VERSION = $(NLC_VERSION)
export TRIT_CACHE

CC      ?= cc
# NDEBUG: assert()s state invariants in the sanitizer, fuzz and coverage builds (their OPT
# leaves it out) and cost nothing in the release build.
OPT     ?= -O2 -DNDEBUG
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c17 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation \
           -Isrc -MMD -MP -pthread -DTRIT_NLC_VERSION='"$(NLC_VERSION)"'
LDLIBS  := -lmicrohttpd -lcurl -ljansson -lpcre2-8 -lxxhash -ldl -lm -pthread $(CROSS_RPATH)
AVX2    := -mavx2 -mfma -mf16c
AVX512  := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c
# Kernel files by target architecture ($(CC) -dumpmachine): the x86 files (src/kernels/x86/,
# every *_avx2.c / *_avx512.c) and their -m flags only for an x86-64 target; elsewhere
# kernels/generic/x86_absent.c stands in for them. The arm files (src/kernels/arm/*_neon.c) get
# -march=armv8.2-a+dotprod+fp16 only for an aarch64 target; elsewhere they compile to an empty set.
TARGET_CPU := $(firstword $(subst -, ,$(shell $(CC) -dumpmachine 2>/dev/null)))
NEON    := -march=armv8.2-a+dotprod+fp16
ifeq ($(TARGET_CPU),x86_64)
ARCH_EXCLUDE :=
else
ARCH_EXCLUDE := src/kernels/x86/% %_avx2.c %_avx512.c
AVX2    :=
AVX512  :=
endif
ifneq ($(TARGET_CPU),aarch64)
NEON    :=
endif

# The llama backend is compiled against the reference header when it is present (it dlopens
# libllama at run time, so trit itself never needs the reference to start).
ifneq ($(wildcard $(REF)/src/include/llama.h),)
LLAMA_CFLAGS := -DTRIT_HAVE_LLAMA_H -I$(REF)/src/include -I$(REF)/src/ggml/include
endif

B ?= build
# The commit trit is built from (`git describe --always --dirty`; "unknown" outside a git
# checkout), as $(B)/gen/trit_commit.h: rewritten only when it changes, so the files that
# include it (base.c: trit_build_commit) rebuild after a new commit and nothing else does.
TRIT_COMMIT := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(shell mkdir -p $(B)/gen && printf '\043define TRIT_COMMIT "%s"\n' '$(TRIT_COMMIT)' | \
  cmp -s - $(B)/gen/trit_commit.h || \
  printf '\043define TRIT_COMMIT "%s"\n' '$(TRIT_COMMIT)' >$(B)/gen/trit_commit.h)
CFLAGS  += -I$(B)/gen
# Page assets (src/<module>/www/*: HTML, JS, CSS) compiled into the binary: scripts/embed makes
# $(B)/gen/<module>/www/<file>.h, included as "<module>/www/<file>.h". Objects wait for them
# (order-only: -MMD then records which object includes which asset).
WWW_SRC := $(wildcard src/*/www/*)
WWW_GEN := $(WWW_SRC:src/%=$(B)/gen/%.h)
LIB_SRC := $(filter-out src/cli/% $(ARCH_EXCLUDE),$(wildcard src/*/*.c src/*/*/*.c))
CLI_SRC := $(wildcard src/cli/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all test unit integration demo asan fuzz fuzz-build fuzz-long bench format format-check clean setup doctor model arch-check coverage arm64 test-arm64
all: $(B)/trit $(B)/libtrit.a

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(findstring _avx512,$<),$(AVX512),$(if $(findstring _avx2,$<),$(AVX2))) \
	  $(if $(findstring _neon,$<),$(NEON)) \
	  $(if $(findstring src/backends/,$<),$(LLAMA_CFLAGS)) -c $< -o $@

$(B)/gen/%.h: src/% scripts/embed
	@scripts/embed $< $@

$(LIB_OBJ) $(CLI_OBJ): | $(WWW_GEN)

$(B)/libtrit.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/trit: $(CLI_OBJ) $(B)/libtrit.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(B)/libtrit.a $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libtrit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(CRIT_FLAGS) -o $@ $< $(B)/libtrit.a -lcriterion $(LDLIBS)

# test_cli_opts tests the cli's option parsers, which live in the binary, not in libtrit.a
$(B)/tests/test_cli_opts: tests/unit/test_cli_opts.c $(B)/src/cli/opts.o $(B)/libtrit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(CRIT_FLAGS) -o $@ $< $(B)/src/cli/opts.o $(B)/libtrit.a -lcriterion $(LDLIBS)

setup:
	@scripts/setup

# make test also wants the AVX2 reference on an AVX-512 CPU (42_avx2_exact proves trit's avx2
# set against it); built once into the cache like the main one (scripts/setup --test).
test:
	@scripts/setup --test
	@$(MAKE) --no-print-directory all units
	@$(MAKE) --no-print-directory asan
	@ASAN_B=build/asan tests/run

units: $(UNIT_BIN)

unit: all units
	@tests/run --unit-only

integration: all
	@tests/run --integration-only

# -fno-sanitize-recover: a UBSan report ends the process (a test that hits one fails), whatever
# UBSAN_OPTIONS says.
asan:
	@$(MAKE) --no-print-directory B=build/asan \
	  OPT="-O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  all units

# aarch64: a cross build with Debian's gcc-aarch64-linux-gnu and the multiarch arm64 -dev
# libraries (scripts/setup --arm64 installs them), run here under qemu-aarch64-static
# (QEMU_LD_PREFIX=/usr/aarch64-linux-gnu). On an arm64 machine plain `make` / `make test` work.
# The rpath makes the cross libc (libc6-arm64-cross, beside the loader QEMU_LD_PREFIX names) win
# over the multiarch libc6:arm64 that the -dev:arm64 packages bring: a loader of one build with
# the libc of the other hangs in pthread_create. A native arm64 build has no rpath.
# Criterion for arm64 lives in a private sysroot (scripts/setup --arm64 says why). The unit
# tests build without loop vectorization there: Debian's gcc-12 aarch64 cross compiler stops
# with an internal error vectorizing an fmax reduction in test_engine.c.
ARM64_CC ?= aarch64-linux-gnu-gcc
ARM64_CRIT := $(TRIT_CACHE)/arm64-sysroot/usr/lib/aarch64-linux-gnu
ARM64 := B=build-arm64 CC=$(ARM64_CC) CROSS_RPATH="-Wl,--disable-new-dtags,-rpath,/usr/aarch64-linux-gnu/lib" \
  CRIT_FLAGS="-fno-tree-vectorize -I$(TRIT_CACHE)/arm64-sysroot/usr/include -L$(ARM64_CRIT) \
  -Wl,-rpath,$(ARM64_CRIT)"
arm64:
	@scripts/setup --arm64
	@$(MAKE) --no-print-directory $(ARM64) all

test-arm64: arm64
	@$(MAKE) --no-print-directory $(ARM64) units
	@scripts/test-arm64 build-arm64

demo: setup
	@$(MAKE) --no-print-directory all
	@scripts/demo

# libFuzzer targets (clang-14): build/fuzz/fuzz_<name>; run each for FUZZ_SECONDS.
# Every library source must compile with the fuzz compiler: a file that does not fails
# fuzz-build, named (make -k compiles the rest first, so every such file is listed).
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?= 10000000
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_LIB_OBJ := $(LIB_OBJ:$(B)/%=build/fuzz/%)
fuzz-build:
	@$(MAKE) -k --no-print-directory B=build/fuzz CC=clang-14 \
	  OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Wno-unknown-warning-option" \
	  build/fuzz/libtrit.a || { for o in $(FUZZ_LIB_OBJ); do c=$${o#build/fuzz/}; c=$${c%.o}.c; \
	  [ -f $$o ] && [ $$o -nt $$c ] || echo "fuzz-build: $$c does not compile with clang-14 (see above)" >&2; \
	  done; exit 1; }
	@fail=0; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); rm -f build/fuzz/$$n; \
	  clang-14 -std=c17 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc -Itests/fuzz -O1 -g \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -o build/fuzz/$$n $$f build/fuzz/libtrit.a $(LDLIBS) \
	    || { echo "fuzz-build: $$n failed to build" >&2; fail=1; }; done; exit $$fail
fuzz: fuzz-build
	@tests/fuzz/run $(FUZZ_SECONDS)
# Each target until FUZZ_RUNS executions (10^7 by default; hours: docs/SECURITY.md). Not part
# of make test.
fuzz-long: fuzz-build
	@FUZZ_RUNS=$(FUZZ_RUNS) tests/fuzz/run

# Line coverage per module (gcov + Debian's gcovr): a -O0 --coverage build in build/cov, the
# suite run against it (COVERAGE_TESTS="--unit-only" for the quick figure), then the report.
# Not part of make test: the instrumented suite takes longer than the normal one.
COVERAGE_TESTS ?=
coverage: setup
	@find build/cov -name '*.gcda' -delete 2>/dev/null || true
	@$(MAKE) --no-print-directory B=build/cov OPT="-O0 --coverage" all units
	@B=build/cov tests/run $(COVERAGE_TESTS) || echo "coverage: some tests failed (the figures still count what ran)" >&2
	@scripts/coverage build/cov

bench: all
	@bench/engine-vs-llama
	@bench/serve-vs-llama
	@bench/chat-vs-llama
	@bench/targets

# The demo's trained model (docs/TRAINING.md): corpus from Debian's bible-kjv, then
# `trit train` (deterministic: the same bytes on any AVX2 machine, any thread count), then
# models/. MODEL_THREADS only changes the speed.
MODEL_DIR     ?= $(B)/model
MODEL_THREADS ?= 2
model: $(B)/trit
	@scripts/corpus $(MODEL_DIR)/corpus
	$(B)/trit train $(MODEL_DIR)/corpus/kjv-train.txt --heldout $(MODEL_DIR)/corpus/kjv-heldout.txt \
	  -o $(MODEL_DIR)/kjv-bitnet-tq2_0.gguf --vocab-size 2048 --embd 256 --layers 2 --heads 4 \
	  --ff 512 --seq 256 --batch 4 --steps 1200 --warmup 50 --lr 3e-3 --eval-every 200 \
	  --ckpt-every 50 --seed 1 --context-length 2048 --threads $(MODEL_THREADS)
	cp $(MODEL_DIR)/kjv-bitnet-tq2_0.gguf $(MODEL_DIR)/kjv-bitnet-tq2_0.gguf.curve.jsonl \
	  $(MODEL_DIR)/kjv-bitnet-tq2_0.gguf.curve.jsonl.svg $(MODEL_DIR)/corpus/kjv-heldout.txt models/

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
# every #include in src/ against docs/ARCHITECTURE.md's arrows (also run by make test: 06_arch_check)
arch-check:
	@scripts/arch-check

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

doctor: all
	@$(B)/trit doctor

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(UNIT_BIN:=.d)
