#!/usr/bin/env bash
# 70_burnin — short shadow burn-in between two reference llama-servers on the same tiny model
# (-t 1 vs -t 2: a gen-1 vs gen-1 noise case), then `trit burnin stats` and `trit gate`.
# If `trit serve` is built, a few more rounds with it as v2 and the second llama-server as
# the noise lane.
source "$(dirname "$0")/lib.sh"

MODEL=$(tiny_model llama f32)
P1=$(free_port); P2=$(free_port)
LLAMA_THREADS=1 start_llama_server "$MODEL" "$P1"
LLAMA_THREADS=2 start_llama_server "$MODEL" "$P2"
V1=http://127.0.0.1:$P1 V2=http://127.0.0.1:$P2
L="$TMP/ledger.jsonl"

"$TRIT" burnin run --v1 "$V1" --v2 "$V2" --prompts "$ROOT/prompts/burnin.jsonl" --rounds 20 \
  --pace 0 --max-tokens 12 --ledger "$L" --timeout 60 || fail "burnin run exited $?"
[ "$(grep -c . "$L")" -eq 20 ] || fail "ledger has $(grep -c . "$L") lines, want 20"
[ -s "$L.state" ] || fail "no state file"
python3 - "$L" <<'PY' || fail "ledger content"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert [r["round"] for r in recs] == list(range(20)), "round numbers"
for r in recs:
    assert r["bucket"] in ("exact", "prefix-only", "no-match"), r["bucket"]
    assert r["v1"]["model"] and r["v2"]["model"], "provenance"
    assert len(r["hash_v1"]) == 64 and r["lat_v1"] > 0 and r["ntok_v1"] > 0
    if r["bucket"] == "no-match":
        assert r["tie"] in ("tie", "real"), "unclassified no-match"
print("buckets:", {b: sum(r["bucket"] == b for r in recs) for b in set(r["bucket"] for r in recs)})
PY
pass "20 rounds, ledger well-formed"

"$TRIT" burnin stats --ledger "$L" | tee "$TMP/stats.txt"
grep -q "^rounds *20" "$TMP/stats.txt" || fail "stats rounds"
"$TRIT" burnin stats --ledger "$L" --json >"$TMP/stats.json"
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert s['rounds']==20 and s['compared']==20, s" "$TMP/stats.json" ||
  fail "stats --json"
"$TRIT" burnin recent 5 --ledger "$L" --json | python3 -c "import json,sys; assert json.load(sys.stdin)['rounds']==5" ||
  fail "recent 5"
"$TRIT" burnin since 1h --ledger "$L" --json | python3 -c "import json,sys; assert json.load(sys.stdin)['rounds']==20" ||
  fail "since 1h"
"$TRIT" burnin drift --ledger "$L" >/dev/null || fail "drift"
"$TRIT" burnin stats --ledger "$L" --ledger "$L" --json | python3 -c "import json,sys; assert json.load(sys.stdin)['rounds']==40" ||
  fail "merged ledgers"
pass "stats, recent, since, drift, merge"

# gate: no ppl figures -> NO-GO (exit 1) with the ppl row FAIL
set +e
"$TRIT" gate --config "$ROOT/cutover.ini" --ledger "$L" | tee "$TMP/gate1.txt"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "gate without ppl exited $rc, want 1"
grep -q "^ppl gen-2 vs gen-1 .*FAIL" "$TMP/gate1.txt" || fail "ppl row not FAIL"
grep -q "^rounds .*PASS" "$TMP/gate1.txt" || fail "rounds row not PASS"
grep -q "^spike .*PASS" "$TMP/gate1.txt" || fail "spike row not PASS"
echo '{"gen1":{"ppl":20.0,"ppl_err":0.5},"gen2":{"ppl":20.01,"ppl_err":0.5},"kld":{"mean":0.0001}}' >"$TMP/ppl.json"
set +e
"$TRIT" gate --config "$ROOT/cutover.ini" --ledger "$L" --ppl "$TMP/ppl.json" --json >"$TMP/gate2.json"
rc=$?
set -e
python3 - "$TMP/gate2.json" "$rc" <<'PY' || fail "gate with ppl"
import json, sys
g = json.load(open(sys.argv[1])); rc = int(sys.argv[2])
rows = {r["gate"]: r["verdict"] for r in g["gates"]}
print(rows)
assert len(rows) == 8
assert rows["ppl gen-2 vs gen-1"] == "PASS"
assert rows["exact-match rate"] == "PASS"   # same reference binary and model: exact
assert (rc == 0) == g["go"] == all(v == "PASS" for v in rows.values())
PY
# too few samples with the production defaults: never GO
set +e; (cd "$TMP" && "$TRIT" gate --ledger "$L" --ppl "$TMP/ppl.json" >/dev/null); rc=$?; set -e
[ "$rc" -eq 1 ] || fail "gate with default config (50000 rounds) exited $rc"
pass "gate table"

if "$TRIT" serve --help >/dev/null 2>&1; then
  P3=$(free_port)
  start_trit_serve "$MODEL" "$P3"
  L2="$TMP/ledger-trit.jsonl"
  "$TRIT" burnin run --v1 "$V1" --v2 "http://127.0.0.1:$P3" --noise-lane "$V2" \
    --prompts "$ROOT/prompts/burnin.jsonl" --rounds 6 --pace 0 --max-tokens 12 --ledger "$L2" ||
    fail "burnin vs trit serve exited $?"
  [ "$(grep -c . "$L2")" -eq 6 ] || fail "trit ledger lines"
  python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    assert r['bucket'] in ('exact','prefix-only','no-match'), r['bucket']
    assert r['noise_bucket'] in ('exact','prefix-only','no-match'), r['noise_bucket']
" "$L2" || fail "trit serve lane or noise lane"
  "$TRIT" burnin stats --ledger "$L2"
  pass "trit serve as v2 with a noise lane (6 rounds)"
else
  echo "note: trit serve is not built; llama vs trit lane not exercised"
fi
echo "70_burnin: ok"
