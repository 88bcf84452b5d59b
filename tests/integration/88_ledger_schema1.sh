#!/usr/bin/env bash
# 88_ledger_schema1 — a burn-in ledger written before the ledger schema change (schema 1: no
# hash chain, no identities; tests/fixtures/ledger-schema1.jsonl, written by the schema-1
# `trit burnin run`) reads identically: `burnin stats`, `recent` and `drift` print what the
# schema-1 code printed, byte for byte, and the report's sections after the gate table are
# the same. `burnin verify` calls it unchained (exit 3); `trit gate` refuses it by default
# and accepts it with --allow-unchained, saying so.
source "$(dirname "$0")/lib.sh"

FX="$ROOT/tests/fixtures/ledger-schema1"
for sub in stats drift; do
  "$TRIT" burnin "$sub" --ledger "$FX.jsonl" --json >"$TMP/$sub.json" || fail "burnin $sub"
  cmp "$TMP/$sub.json" "$FX.$sub.json" || { diff "$TMP/$sub.json" "$FX.$sub.json" | head; fail "burnin $sub differs"; }
done
"$TRIT" burnin recent 17 --ledger "$FX.jsonl" --json >"$TMP/recent.json" || fail "burnin recent"
cmp "$TMP/recent.json" "$FX.recent.json" || fail "burnin recent differs"
"$TRIT" report --ledger "$FX.jsonl" -o "$TMP/r.html" 2>/dev/null || fail "report"
python3 - "$TMP/r.html" "$FX.report-body.html" <<'PY' || fail "report body differs"
import sys
got = open(sys.argv[1]).read()
got = got[got.index("<section id=summary>"):]
want = open(sys.argv[2]).read()
assert got == want, next(i for i in range(min(len(got), len(want)) + 1) if got[i:i+1] != want[i:i+1])
PY
grep -q "REFUSED — ledger .* is unchained" "$TMP/r.html" || fail "the report's gate section does not say REFUSED"
pass "schema-1 ledger: stats, recent, drift and report read as before"

set +e; "$TRIT" burnin verify --ledger "$FX.jsonl" >"$TMP/verify.txt"; rc=$?; set -e
cat "$TMP/verify.txt"
[ "$rc" -eq 3 ] && grep -q "unchained (written before ledger schema 2): 17 records" "$TMP/verify.txt" ||
  fail "verify on a schema-1 ledger: exit $rc"
set +e; "$TRIT" gate --ledger "$FX.jsonl" >"$TMP/gate.txt"; rc=$?; set -e
[ "$rc" -eq 2 ] && grep -q "REFUSED: ledger .* is unchained" "$TMP/gate.txt" || fail "gate on unchained: exit $rc"
set +e; "$TRIT" gate --ledger "$FX.jsonl" --allow-unchained >"$TMP/gate2.txt"; rc=$?; set -e
cat "$TMP/gate2.txt"
grep -q "ALLOWED/NOTE: unchained ledger accepted (--allow-unchained)" "$TMP/gate2.txt" ||
  fail "--allow-unchained not said"
pass "schema-1 ledger: unchained; refused by gate unless --allow-unchained"
echo "88_ledger_schema1: ok"
