#!/usr/bin/env bash
# 69_targets_judge — bench/targets judges the unrounded figure (issue 19's honest edge):
# 0.9951 prints 0.995 and does NOT meet 1.0 (it used to print 1.00 and count as met); a
# latency gap of +0.04 ms is not <= 0; a figure that could not be measured is "not measured",
# never met. Runs `bench/targets --judge`, the rule every row of its table uses; no model.
source "$(dirname "$0")/lib.sh"
T="$ROOT/bench/targets"
check() { # check WANT VALUE OP TARGET [DECIMALS]
  local want="$1" got; shift
  got=$("$T" --judge "$@") || fail "targets --judge $* exited $?"
  [ "$got" = "$want" ] || fail "targets --judge $*: '$got', want '$want'"
}
check "0.995 NOT met" 0.9951 ">=" 1.0
check "1.00 met" 1.0 ">=" 1.0
check "1.004 met" 1.004 ">=" 1.0
check "1.23 NOT met" 1.2345 ">=" 1.3
check "1.31 met" 1.3051 ">=" 1.3
check "1.2999 NOT met" 1.29991 ">=" 1.3 # 1.300 would read as the target: one digit more
check "0.99999999 NOT met" 0.99999999 ">=" 1
check "0.04 NOT met" 0.04 "<=" 0 1
check "-0.04 met" -0.04 "<=" 0 1
check "0.0 met" 0 "<=" 0 1
check "84.96 NOT met" 84.96 ">=" 85 1
check "- not measured" "" ">=" 1.0
check "- not measured" nan ">=" 1.0
check "- not measured" "failed" "<=" 0
rc=0
"$T" --judge 1 "=" 1 >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a bad operator: exit $rc, want 2"
rc=0
"$T" extra >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "an unknown argument: exit $rc, want 2"
pass "bench/targets judges unrounded figures and shows the digits that decide"
