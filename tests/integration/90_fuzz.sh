#!/usr/bin/env bash
# 90_fuzz: builds the libFuzzer targets (clang-14) and runs each for ${FUZZ_SECONDS:-8} s on
# its seed corpus (tests/fuzz/run). Fails if a target does not build, or crashes.
source "$(dirname "$0")/lib.sh"
command -v clang-14 >/dev/null || fail "clang-14 not installed (needed for libFuzzer; scripts/setup installs it)"
build_rc=0
make -C "$ROOT" -j2 --no-print-directory fuzz-build >"$TMP/build.log" 2>&1 || build_rc=$?
grep -E 'fuzz-build:|error:' "$TMP/build.log" | head -20 || true
[ -x "$ROOT/build/fuzz/fuzz_gguf" ] || fail "build/fuzz/fuzz_gguf was not built (log: $TMP/build.log)"
run_rc=0
FUZZ_ARTIFACTS="${FUZZ_ARTIFACTS:-$TMP/artifacts}" "$ROOT/tests/fuzz/run" "${FUZZ_SECONDS:-8}" || run_rc=$?
[ "$run_rc" -eq 0 ] || fail "a fuzz target crashed or could not run (reproducers under ${FUZZ_ARTIFACTS:-$TMP/artifacts})"
[ "$build_rc" -eq 0 ] || fail "make fuzz-build failed (log above)"
pass "fuzz targets built and ran ${FUZZ_SECONDS:-8}s each without a crash"
