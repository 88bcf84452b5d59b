#!/usr/bin/env bash
# 99_demo — a shortened `make demo` (DEMO_ROUNDS=20): every step runs, every artefact exists,
# the verdict line agrees with the gate's exit code, the verdict is GO (trit matches the
# reference on the demo model; a NO-GO from the latency rows alone is reported, not failed:
# see below), the live dashboard's URL is printed during the burn-in, and no server it started
# (nor the dashboard) is left running.
source "$(dirname "$0")/lib.sh"
out="$TMP/demo"
set +e
DEMO_ROUNDS=20 DEMO_OUT="$out" TRIT="$TRIT" "$ROOT/scripts/demo" >"$TMP/demo.log" 2>&1
rc=$?
set -e
cat "$TMP/demo.log"
[ "$rc" -ne 2 ] || fail "demo setup failure (rc 2)"
for f in ppl.json ledger.jsonl report.html ladder.json; do
  [ -s "$out/$f" ] || fail "demo did not write $f"
done
grep -q 'cutover gates' "$TMP/demo.log" || fail "no gate table printed"
grep -q '^  live dashboard: http://127.0.0.1:[0-9]*/' "$TMP/demo.log" || fail "no dashboard URL printed during the burn-in"
grep -q '^\[demo 7/7\] cutover gate' "$TMP/demo.log" || fail "demo did not reach its last step"
lines=$(grep -c '"bucket"' "$out/ledger.jsonl" || true)
[ "$lines" -eq 20 ] || fail "ledger has $lines rounds, want 20"
if [ "$rc" -eq 0 ]; then grep -q 'verdict: GO ' "$TMP/demo.log" || fail "rc 0 but verdict not GO"
else grep -q 'verdict: NO-GO ' "$TMP/demo.log" || fail "rc $rc but verdict not NO-GO"; fi
if pgrep -f "$out/demo-bitnet" >/dev/null; then fail "demo left servers running"; fi
if pgrep -f "burnin dashboard --ledger $out/" >/dev/null; then fail "demo left the dashboard running"; fi
# The latency gates (p95 gap; the trend, whose windows include it) are about speed, and 20
# rounds on a shared machine make their verdict a coin toss: what this test requires is that
# trit matches the reference. A NO-GO passes only when every step succeeded and the same
# gate over the same evidence, latency bound lifted, says GO: then the p95 row is reported
# as a figure. Any other failing gate, or a failed step, still fails here.
note=""
if [ "$rc" -ne 0 ]; then
  steps=$(sed -n 's/^\[demo\] verdict: NO-GO (gate exit [0-9]*; ladder exit \([0-9]*\); ppl exit \([0-9]*\); burn-in exit \([0-9]*\)).*/\1\2\3/p' "$TMP/demo.log")
  [ "$steps" = 000 ] || fail "verdict NO-GO with a failed step (ladder, ppl, burn-in exits: $steps)"
  sed -e 's/^p95_gap_max_ms .*/p95_gap_max_ms = 1000000/' "$ROOT/cutover.ini" >"$TMP/no-latency.ini"
  grc=0
  "$TRIT" gate --config "$TMP/no-latency.ini" --ledger "$out/ledger.jsonl" --ppl "$out/ppl.json" >"$TMP/regate.txt" || grc=$?
  [ "$grc" -eq 0 ] || { cat "$TMP/regate.txt"; fail "verdict NO-GO (gate exit $rc): trit does not match the reference on the demo model"; }
  note=" (NO-GO on latency only, a figure on this machine: $(grep '^p95 latency gap' "$TMP/demo.log" | tr -s ' '))"
fi
pass "demo: GO$note, 20 rounds, report and receipts written, servers stopped"
