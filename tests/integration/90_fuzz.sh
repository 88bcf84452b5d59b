#!/usr/bin/env bash
# 90_fuzz: builds the libFuzzer targets (clang-14) and runs each for ${FUZZ_SECONDS:-8} s on
# its seed corpus (tests/fuzz/run). Fails if any library source or target does not build
# (make fuzz-build names the file), a target has no seed corpus, or a target crashes, leaks or
# trips a sanitizer (UBSan included: the fuzz build does not recover).
source "$(dirname "$0")/lib.sh"
command -v clang-14 >/dev/null || fail "clang-14 not installed (needed for libFuzzer; scripts/setup installs it)"
build_rc=0
make -C "$ROOT" -j2 --no-print-directory fuzz-build >"$TMP/build.log" 2>&1 || build_rc=$?
grep -E 'fuzz-build:|error:' "$TMP/build.log" | head -20 || true
[ "$build_rc" -eq 0 ] || fail "make fuzz-build failed (log: $TMP/build.log)"
for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
  n=$(basename "$src" .c)
  [ -x "$ROOT/build/fuzz/$n" ] || fail "build/fuzz/$n was not built (log: $TMP/build.log)"
  [ -n "$(ls -A "$ROOT/tests/fuzz/corpus/${n#fuzz_}" 2>/dev/null)" ] ||
    fail "$n has no seed corpus in tests/fuzz/corpus/${n#fuzz_}/"
done
run_rc=0
FUZZ_ARTIFACTS="${FUZZ_ARTIFACTS:-$TMP/artifacts}" "$ROOT/tests/fuzz/run" "${FUZZ_SECONDS:-8}" || run_rc=$?
[ "$run_rc" -eq 0 ] || fail "a fuzz target crashed or could not run (reproducers under ${FUZZ_ARTIFACTS:-$TMP/artifacts})"
pass "fuzz targets built and ran ${FUZZ_SECONDS:-8}s each without a crash"
