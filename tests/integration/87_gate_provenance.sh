#!/usr/bin/env bash
# 87_gate_provenance — issue 19's negative cases through the real `trit gate`, on ledgers
# written by the real writer (`trit burnin run` against two `trit serve`s on a tiny model):
#   0. the good case: GO, a provenance block, a receipt that --verify recomputes
#   1. the same server on both sides                      -> exit 2, "same server"
#   2. a ppl file from another model                      -> exit 2, "another gen-2"
#   3. a ledger line edited by one byte                   -> exit 2, "hash chain broken"
#                                                            (and `burnin verify` exit 1)
#   4. 2000 unreachable + 40 compared, rounds_min 2000    -> exit 1, rounds FAIL (too few)
#   5. a 1-token ppl file                                 -> exit 1, ppl FAIL (1 < 1024)
#   6. old evidence: timestamps moved back 5 years        -> exit 2 (the chain breaks);
#      a genuinely old ledger (max_age 2s, 3 s later)     -> exit 2, "older than max_age"
#   7. a ppl file without provenance                      -> exit 2, "no provenance"
# What the gate printed for each case is in $TMP/case-*.txt (shown in the log).
source "$(dirname "$0")/lib.sh"

MODEL=$(tiny_model llama f32)
MODEL2=$(tiny_model llama f32 --seed 2)
P1=$(free_port); P2=$(free_port); P3=$(free_port)
start_trit_serve "$MODEL" "$P1"
start_trit_serve "$MODEL" "$P2"
start_trit_serve "$MODEL2" "$P3"
V1=http://127.0.0.1:$P1 V2=http://127.0.0.1:$P2 V3=http://127.0.0.1:$P3
CFG="$TMP/gates.ini"
# provenance is what this test is about: the latency gates (p95 gap, and the trend's latency
# windows) are opened wide so a loaded machine cannot turn the good case into a NO-GO
sed -e 's/^rounds_min .*/rounds_min = 20/' -e 's/^p95_gap_max_ms .*/p95_gap_max_ms = 1000000/' "$ROOT/cutover.ini" >"$CFG"

burnin() { # burnin LEDGER ROUNDS V1 V2 [more options]
  local l="$1" n="$2" a="$3" b="$4"; shift 4
  "$TRIT" burnin run --v1 "$a" --v2 "$b" --prompts "$ROOT/prompts/burnin.jsonl" --rounds "$n" \
    --pace 0 --max-tokens 4 --ledger "$l" --timeout 30 --quiet "$@" >>"$TMP/burnin.log" 2>&1
}
# gate CASE [args]: runs `trit gate`, keeps what it printed, sets $rc
gate() {
  local name="$1"; shift
  set +e
  "$TRIT" gate "$@" >"$TMP/case-$name.txt" 2>&1
  rc=$?
  set -e
  echo "--- case $name: trit gate exit $rc"
  cat "$TMP/case-$name.txt"
}
# ppl_file OUT IDENT1_URL IDENT2_URL TOKENS [no-provenance]: a ppl file as `trit ppl` writes it
ppl_file() {
  local out="$1" u1="$2" u2="$3" n="$4" bare="${5:-}"
  "$TRIT" doctor --url "$u1" --json >"$TMP/id1.json" || fail "doctor $u1"
  "$TRIT" doctor --url "$u2" --json >"$TMP/id2.json" || fail "doctor $u2"
  python3 - "$out" "$TMP/id1.json" "$TMP/id2.json" "$n" "$bare" <<'PY'
import json, sys
out, i1, i2, n, bare = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
chunks = max(1, n // 255)
side = lambda p: {"ppl": p, "ppl_err": 0.1, "chunks": chunks, "ctx": 256, "count": n}
d = {"gen1": side(20.0), "gen2": side(20.01), "kld": {"mean": 0.0001}}
if not bare:
    d.update(gen1_identity=json.load(open(i1)), gen2_identity=json.load(open(i2)),
             text_path="models/kjv-heldout.txt", text_sha256="0" * 64, scored_tokens=n,
             ts=__import__("time").time())
json.dump(d, open(out, "w"))
PY
}

# 0. the good case
L="$TMP/good.jsonl"
burnin "$L" 24 "$V1" "$V2" || fail "burn-in exited $?"
grep -q '"type":"identity"' "$L" || fail "the burn-in recorded no identity records"
grep -q '"v2_ident":"' "$L" || fail "the burn-in rounds carry no v2_ident"
ppl_file "$TMP/ppl.json" "$V1" "$V2" 2040
gate good --config "$CFG" --ledger "$L" --ppl "$TMP/ppl.json" -o "$TMP/receipt.json"
[ "$rc" -eq 0 ] || fail "good case: exit $rc, want 0 (GO)"
grep -q "^provenance" "$TMP/case-good.txt" || fail "no provenance block"
grep -q "gen-2  trit .*sha256 [0-9a-f]\{64\}" "$TMP/case-good.txt" || fail "gen-2 identity not shown"
grep -q "ledger $L: intact.*head [0-9a-f]\{64\}" "$TMP/case-good.txt" || fail "chain head not shown"
grep -q "ppl file sha256 [0-9a-f]\{64\}" "$TMP/case-good.txt" || fail "ppl file hash not shown"
# both sides here are trit serve on one model (two servers): allowed, but the gate says so
grep -q "NOTE: .*same engine, build and model" "$TMP/case-good.txt" || fail "two deployments of one engine not noted"
[ "$(stat -c %a "$TMP/receipt.json")" = 600 ] || fail "receipt not 0600"
"$TRIT" gate --verify "$TMP/receipt.json" || fail "receipt does not verify"
"$TRIT" burnin verify --ledger "$L" >"$TMP/verify-good.txt" || fail "burnin verify on an intact ledger"
grep -q "intact" "$TMP/verify-good.txt" || fail "burnin verify did not say intact"
pass "GO with provenance; receipt verifies; chain intact"

# the receipt notices changed evidence: one more round appended
burnin "$L" 25 "$V1" "$V2"
set +e; "$TRIT" gate --verify "$TMP/receipt.json" >"$TMP/verify-changed.txt"; vrc=$?; set -e
cat "$TMP/verify-changed.txt"
[ "$vrc" -eq 1 ] && grep -q "differs: ledger .* chain head" "$TMP/verify-changed.txt" ||
  fail "a changed ledger was not named by --verify (exit $vrc)"
pass "--verify names a changed chain head"

# 1. the same server on both sides (spelled two ways): `burnin run` refuses to start, and a
# ledger that says so anyway (made by another tool: the good ledger with gen-2 rewritten to
# gen-1's server, re-chained so only the provenance is wrong) is refused by the gate
LS="$TMP/same.jsonl"
if burnin "$LS" 20 "$V1" "http://localhost:$P1/v1/"; then fail "a same-server burn-in ran"; fi
grep -q "same server" "$TMP/burnin.log" && [ ! -s "$LS" ] || fail "same-server burn-in: no refusal"
python3 - "$L" "$LS" <<'PY'
import hashlib, json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
v1 = next(r for r in recs if r["type"] == "identity" and r["side"] == "v1")
out, prev = [], "0" * 64
for r in recs:
    if r["type"] == "identity" and r["side"] == "v2":
        r["ident"], r["digest"] = v1["ident"], v1["digest"]
    if r["type"] == "round":
        r["v2"], r["v2_ident"] = r["v1"], r["v1_ident"]
    r["prev"] = prev
    line = json.dumps(r, separators=(",", ":"), ensure_ascii=False)
    prev = hashlib.sha256(line.encode()).hexdigest()
    out.append(line)
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
"$TRIT" burnin verify --ledger "$LS" >/dev/null || fail "the rewritten same-server ledger is not chained"
gate same --config "$CFG" --ledger "$LS"
[ "$rc" -eq 2 ] && grep -q "REFUSED: gen-1 and gen-2 are the same server" "$TMP/case-same.txt" ||
  fail "same server: exit $rc"
pass "same server on both sides refused"

# 2. a ppl file from another model (gen-2's identity is the seed-2 model's)
ppl_file "$TMP/ppl-other.json" "$V1" "$V3" 2040
gate other-model --config "$CFG" --ledger "$L" --ppl "$TMP/ppl-other.json"
[ "$rc" -eq 2 ] && grep -q "REFUSED: the ppl file is about another gen-2" "$TMP/case-other-model.txt" ||
  fail "ppl from another model: exit $rc"
pass "ppl file from another model refused"

# 3. one byte of one line edited (a latency digit of line 8)
LE="$TMP/edited.jsonl"
python3 - "$L" "$LE" <<'PY'
import sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
i = 7
k = lines[i].index(b'"lat_v1":') + len(b'"lat_v1":0.')
lines[i] = lines[i][:k] + bytes([(lines[i][k] - 48 + 1) % 10 + 48]) + lines[i][k + 1:]
open(sys.argv[2], "wb").write(b"\n".join(lines))
PY
cmp -s "$L" "$LE" && fail "the edit changed nothing"
gate edited --config "$CFG" --ledger "$LE" --ppl "$TMP/ppl.json"
[ "$rc" -eq 2 ] && grep -q "REFUSED: ledger .*hash chain broken: line 8 was edited" "$TMP/case-edited.txt" ||
  fail "edited line: exit $rc"
set +e; "$TRIT" burnin verify --ledger "$LE" >"$TMP/verify-edited.txt"; vrc=$?; set -e
cat "$TMP/verify-edited.txt"
[ "$vrc" -eq 1 ] && grep -q "line 8 was edited" "$TMP/verify-edited.txt" || fail "burnin verify: exit $vrc"
set +e; "$TRIT" report --ledger "$LE" -o "$TMP/edited.html" 2>"$TMP/report-edited.txt"; vrc=$?; set -e
[ "$vrc" -eq 2 ] && grep -q "hash chain broken" "$TMP/report-edited.txt" || fail "report on a broken chain: exit $vrc"
pass "a one-byte edit refused by gate and report, named by burnin verify"

# 4. 2000 v1-unreachable rounds + 40 compared, rounds_min 2000
DEAD=http://127.0.0.1:$(free_port)
LU="$TMP/unreach.jsonl"
burnin "$LU" 2000 "$DEAD" "$V2" --timeout 2 --spike-min 100000 --concurrency 4 --max-tokens 1 || true
burnin "$LU" 2040 "$V1" "$V2" || fail "40 compared rounds"
sed -e 's/^rounds_min .*/rounds_min = 2000/' "$CFG" >"$TMP/gates2000.ini"
gate unreachable --config "$TMP/gates2000.ini" --ledger "$LU" --ppl "$TMP/ppl.json"
[ "$rc" -eq 1 ] && grep -q "^rounds .*40 compared (2040 rounds, 2000 unreachable) *FAIL *too few samples (40 < 2000" \
  "$TMP/case-unreachable.txt" || fail "2000 unreachable + 40 compared: exit $rc"
pass "rounds gate counts compared rounds only"

# 5. a 1-token ppl file
ppl_file "$TMP/ppl-1tok.json" "$V1" "$V2" 1
gate one-token --config "$CFG" --ledger "$L" --ppl "$TMP/ppl-1tok.json"
[ "$rc" -eq 1 ] && grep -q "^ppl gen-2 vs gen-1 .*FAIL.*too few samples (1 < 1024 scored tokens)" \
  "$TMP/case-one-token.txt" || fail "1-token ppl file: exit $rc"
pass "1-token ppl file is FAIL with the count"

# 6. old evidence: every timestamp moved back 5 years (the chain breaks: refused) ...
LO="$TMP/old.jsonl"
python3 - "$L" "$LO" <<'PY'
import json, sys
out = open(sys.argv[2], "w")
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "ts" in r:
        r["ts"] -= 5 * 365 * 86400
    out.write(json.dumps(r, separators=(",", ":")) + "\n")
PY
gate old --config "$CFG" --ledger "$LO" --ppl "$TMP/ppl.json"
[ "$rc" -eq 2 ] && grep -q "REFUSED: ledger .*hash chain broken" "$TMP/case-old.txt" || fail "old timestamps: exit $rc"
# ... and evidence that is genuinely older than max_age
sed -e 's/^max_age .*/max_age = 2s/' "$CFG" >"$TMP/gates-2s.ini"
sleep 3
gate stale --config "$TMP/gates-2s.ini" --ledger "$L" --ppl "$TMP/ppl.json"
[ "$rc" -eq 2 ] && grep -q "REFUSED: evidence older than max_age" "$TMP/case-stale.txt" || fail "stale evidence: exit $rc"
pass "old evidence refused"

# 7. a ppl file without provenance
ppl_file "$TMP/ppl-bare.json" "$V1" "$V2" 2040 bare
gate no-provenance --config "$CFG" --ledger "$L" --ppl "$TMP/ppl-bare.json"
[ "$rc" -eq 2 ] && grep -q "REFUSED: the ppl file has no provenance" "$TMP/case-no-provenance.txt" ||
  fail "ppl without provenance: exit $rc"
pass "ppl file without provenance refused"
echo "87_gate_provenance: ok"
