#!/usr/bin/env bash
# 06_arch_check — the code follows the map: `make arch-check` (scripts/arch-check) passes on
# this tree, and fails, naming the file and the arrow, when an upward include, a module
# without a row, or a cycle in the map is added to a copy of the tree.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
out=$(scripts/arch-check) || fail "arch-check fails on the tree itself: $out"
pass "$out"

copy() { rm -rf "$TMP/tree"; mkdir -p "$TMP/tree"; cp -r "$ROOT/src" "$ROOT/docs" "$TMP/tree/"; }

# an upward include: kernels (low) reaching into server (high)
copy
sed -i '1i #include "server/server.h"' "$TMP/tree/src/kernels/ops.c"
if out=$(scripts/arch-check "$TMP/tree"); then fail "an upward include passed: $out"; fi
grep -q 'src/kernels/ops.c:1: kernels includes server/' <<<"$out" || fail "upward include not named: $out"
pass "upward include kernels -> server refused: $(head -1 <<<"$out")"

# a new module the map does not describe
copy
mkdir -p "$TMP/tree/src/dashboard" && echo '#include "base/base.h"' >"$TMP/tree/src/dashboard/dashboard.c"
if out=$(scripts/arch-check "$TMP/tree"); then fail "a module without a row passed: $out"; fi
grep -q 'src/dashboard: module has no row' <<<"$out" || fail "missing row not named: $out"
pass "module without a row refused"

# a cycle in the map itself (quant allowed to include gguf, which includes quant)
copy
sed -i 's/^| quant | \(.*\) | base |$/| quant | \1 | base, gguf |/' "$TMP/tree/docs/ARCHITECTURE.md"
grep -q '^| quant |.*| base, gguf |$' "$TMP/tree/docs/ARCHITECTURE.md" || fail "test setup: quant row not edited"
if out=$(scripts/arch-check "$TMP/tree"); then fail "a cycle in the map passed: $out"; fi
grep -q 'cycle: .*gguf -> quant\|cycle: .*quant -> gguf' <<<"$out" || fail "cycle not named: $out"
pass "cycle in the map refused"
