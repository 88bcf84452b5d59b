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
[ "$(grep -c '"type":"round"' "$L")" -eq 20 ] || fail "ledger has $(grep -c '"type":"round"' "$L") rounds, want 20"
[ -s "$L.state" ] || fail "no state file"
node - "$L" <<'JS' || fail "ledger content"
const assert = require('assert');
const all = require('fs').readFileSync(process.argv[2], 'utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l));
const recs = all.filter(r => r.type === 'round');
assert.deepStrictEqual(recs.map(r => r.round), [...Array(20).keys()], 'round numbers');
// a run starts with each side's identity
assert.deepStrictEqual(all.slice(0, 2).map(r => `${r.type}:${r.side}`), ['identity:v1', 'identity:v2']);
const count = {};
for (const r of recs) {
  assert(['exact', 'prefix-only', 'no-match'].includes(r.bucket), r.bucket);
  assert(r.v1.model && r.v2.model, 'provenance');
  assert(r.hash_v1.length === 64 && r.lat_v1 > 0 && r.ntok_v1 > 0, 'hash/latency/tokens');
  if (r.bucket === 'no-match') assert(['tie', 'real'].includes(r.tie), 'unclassified no-match');
  count[r.bucket] = (count[r.bucket] || 0) + 1;
}
console.log('buckets:', JSON.stringify(count));
JS
pass "20 rounds, ledger well-formed"

"$TRIT" burnin stats --ledger "$L" | tee "$TMP/stats.txt"
grep -q "^rounds *20" "$TMP/stats.txt" || fail "stats rounds"
"$TRIT" burnin stats --ledger "$L" --json >"$TMP/stats.json"
jget() { node -e 'let t="";process.stdin.on("data",c=>t+=c).on("end",()=>console.log(JSON.parse(t)[process.argv[1]]))' "$1"; }
[ "$(jget rounds <"$TMP/stats.json")/$(jget compared <"$TMP/stats.json")" = 20/20 ] ||
  fail "stats --json"
[ "$("$TRIT" burnin recent 5 --ledger "$L" --json | jget rounds)" = 5 ] ||
  fail "recent 5"
[ "$("$TRIT" burnin since 1h --ledger "$L" --json | jget rounds)" = 20 ] ||
  fail "since 1h"
"$TRIT" burnin drift --ledger "$L" >/dev/null || fail "drift"
# the same ledger twice counts once (it used to double the counts)
[ "$("$TRIT" burnin stats --ledger "$L" --ledger "$L" --json | jget rounds)" = 20 ] ||
  fail "merged ledgers: the same ledger twice must count once"
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
# a ppl file as `trit ppl` writes it: figures, and the provenance the gate requires (each
# side's identity as the servers report it, the text's hash, the scored tokens)
"$TRIT" doctor --url "$V1" --json >"$TMP/id1.json" || fail "doctor $V1"
"$TRIT" doctor --url "$V2" --json >"$TMP/id2.json" || fail "doctor $V2"
node - "$TMP/id1.json" "$TMP/id2.json" >"$TMP/ppl.json" <<'JS' || fail "ppl file"
const fs = require('fs'), id = f => JSON.parse(fs.readFileSync(f, 'utf8'));
const side = p => ({ppl: p, ppl_err: 0.5, chunks: 8, ctx: 256, count: 2040});
console.log(JSON.stringify({gen1: side(20.0), gen2: side(20.01), kld: {mean: 0.0001},
  gen1_identity: id(process.argv[2]), gen2_identity: id(process.argv[3]),
  text_path: 'held-out.txt', text_sha256: '0'.repeat(64), scored_tokens: 2040,
  ts: Date.now() / 1000}));
JS
set +e
"$TRIT" gate --config "$ROOT/cutover.ini" --ledger "$L" --ppl "$TMP/ppl.json" --json >"$TMP/gate2.json"
rc=$?
set -e
node - "$TMP/gate2.json" "$rc" <<'JS' || { cat "$TMP/gate2.json"; fail "gate with ppl"; }
const assert = require('assert');
const g = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8')), rc = +process.argv[3];
const rows = Object.fromEntries(g.gates.map(r => [r.gate, r.verdict]));
console.log(JSON.stringify(rows));
assert(rc !== 2 && g.verdict !== 'REFUSED', `evidence refused: ${g.reason}`);
assert.strictEqual(Object.keys(rows).length, 8);
assert.strictEqual(rows['ppl gen-2 vs gen-1'], 'PASS');
assert.strictEqual(rows['exact-match rate'], 'PASS'); // same reference binary and model: exact
const all = Object.values(rows).every(v => v === 'PASS');
assert(rc === 0 ? g.go && all : !g.go && !all, 'exit code vs verdicts');
JS
# too few samples with the production defaults: never GO
set +e; (cd "$TMP" && "$TRIT" gate --ledger "$L" --ppl "$TMP/ppl.json" >/dev/null); rc=$?; set -e
[ "$rc" -eq 1 ] || fail "gate with default config (50000 rounds) exited $rc"
# a ./cutover.ini is never picked up silently: without --config the defaults are used and said
set +e; out=$(cd "$ROOT" && "$TRIT" gate --ledger "$L" --ppl "$TMP/ppl.json"); rc=$?; set -e
[ "$rc" -eq 1 ] || fail "gate in a directory with cutover.ini but no --config exited $rc"
grep -q "config: production defaults" <<<"$out" || fail "gate did not say it used the defaults: $out"
grep -q "^rounds .*>= 50000" <<<"$out" || fail "gate read ./cutover.ini without --config"
pass "gate table"

if "$TRIT" serve --help >/dev/null 2>&1; then
  P3=$(free_port)
  start_trit_serve "$MODEL" "$P3"
  L2="$TMP/ledger-trit.jsonl"
  "$TRIT" burnin run --v1 "$V1" --v2 "http://127.0.0.1:$P3" --noise-lane "$V2" \
    --prompts "$ROOT/prompts/burnin.jsonl" --rounds 6 --pace 0 --max-tokens 12 --ledger "$L2" ||
    fail "burnin vs trit serve exited $?"
  [ "$(grep -c '"type":"round"' "$L2")" -eq 6 ] || fail "trit ledger rounds"
  node - "$L2" <<'JS' || fail "trit serve lane or noise lane"
const assert = require('assert');
for (const l of require('fs').readFileSync(process.argv[2], 'utf8').split('\n').filter(l => l.trim())) {
  const r = JSON.parse(l), ok = ['exact', 'prefix-only', 'no-match'];
  if (r.type !== 'round') continue;
  assert(ok.includes(r.bucket), r.bucket);
  assert(ok.includes(r.noise_bucket), r.noise_bucket);
}
JS
  "$TRIT" burnin stats --ledger "$L2"
  pass "trit serve as v2 with a noise lane (6 rounds)"
else
  echo "note: trit serve is not built; llama vs trit lane not exercised"
fi
# one server on both sides (the same URL, spelled two ways) is refused before anything is
# written: a server compared with itself proves nothing
set +e
"$TRIT" burnin run --v1 "$V1" --v2 "http://localhost:$P1/v1/" --prompts "$ROOT/prompts/burnin.jsonl" --rounds 2 \
  --pace 0 --ledger "$TMP/same.jsonl" >/dev/null 2>"$TMP/same.err"
rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "same server" "$TMP/same.err" || fail "same server on both sides: rc $rc, $(cat "$TMP/same.err")"
[ ! -s "$TMP/same.jsonl" ] || fail "the refused run wrote $(wc -l <"$TMP/same.jsonl") ledger lines"
pass "burn-in refuses one server on both sides: $(head -1 "$TMP/same.err")"
echo "70_burnin: ok"
