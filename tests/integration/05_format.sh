#!/usr/bin/env bash
# 05_format — every tracked C file is clang-format clean (.clang-format).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src tests bench -name '*.[ch]')
bad=$(for f in $files; do clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"; done)
[ -z "$bad" ] || fail "not clang-format clean (run make format): $bad"
pass "$(echo "$files" | wc -l) files clang-format clean"
