#!/usr/bin/env bash
# 79_burnin_concurrency — `trit burnin run --concurrency 4` against llama-server -np 4 (gen-1)
# and trit serve --slots 4 (gen-2) on the demo model, with a second llama-server -np 4 as the
# noise lane (each round's noise request issued with its gen-1/gen-2 requests, so the noise
# lane is under the same load):
#   - every round is in the ledger exactly once, in round order, with 4 rounds in flight;
#   - kill -9 mid-run, then the same command: exactly N rounds, none lost, none twice, and
#     one intact hash chain (`trit burnin verify`);
#   - every gen-1 noise split (noise lane vs gen-1) that happens is classified tie (the
#     recorded 4-client case is tests/unit/test_burnin.c: tiny models rarely split);
#   - identity records open each run; pace is per lane; a no-match spike still halts (exit 3).
source "$(dirname "$0")/lib.sh"

MODEL="$ROOT/models/kjv-bitnet-tq2_0.gguf"
export LLAMA_CTX=8192 # 4 slots of 2048: every corpus prompt fits
[ -s "$MODEL" ] || { echo "skip: no demo model"; exit 77; }
[ -x "$(ref_bin llama-server)" ] || { echo "skip: no llama-server"; exit 77; }
P1=$(free_port); P2=$(free_port); P3=$(free_port)
start_llama_server "$MODEL" "$P1" -np 4
start_llama_server "$MODEL" "$P3" -np 4
start_trit_serve "$MODEL" "$P2" --slots 4
V1=http://127.0.0.1:$P1 V2=http://127.0.0.1:$P2 VN=http://127.0.0.1:$P3
L="$TMP/ledger.jsonl"
N=40
RUN=("$TRIT" burnin run --v1 "$V1" --v2 "$V2" --noise-lane "$VN" --prompts "$ROOT/prompts/burnin.jsonl"
  --concurrency 4 --pace 0 --max-tokens 24 --timeout 120 --ledger "$L")
rounds() { if [ -f "$1" ]; then grep -c '"type":"round"' "$1" || true; else echo 0; fi; }

# the ledger holds rounds 0..n-1 exactly once, in round order; identity records open each run
check() {
  node - "$1" "$2" <<'JS'
const assert = require('assert');
const [file, n] = [process.argv[2], +process.argv[3]];
const all = require('fs').readFileSync(file, 'utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l));
const rounds = all.filter(r => r.type === 'round');
assert.deepStrictEqual(rounds.map(r => r.round), [...Array(n).keys()], 'rounds in order, each once');
assert.deepStrictEqual(all.slice(0, 3).map(r => `${r.type}:${r.side}`),
                       ['identity:v1', 'identity:v2', 'identity:noise'], 'identity records first');
// at most four rounds in flight, and more than one at some moment (reply intervals overlap)
const iv = rounds.map(r => [r.ts - Math.max(r.lat_v1, r.lat_v2, r.noise_lat), r.ts]);
let most = 0;
for (const [s] of iv) most = Math.max(most, iv.filter(([a, b]) => a <= s && s < b).length);
assert(most >= 2 && most <= 4, `rounds in flight at once: ${most}`);
// the noise lane: gen-1 against itself under load; every split there is batch noise: a tie
const noise = rounds.filter(r => r.noise_bucket === 'no-match');
for (const r of noise)
  assert.strictEqual(r.noise_tie, 'tie', `round ${r.round}: gen-1 noise split classified ${r.noise_tie}`);
const nm = rounds.filter(r => r.bucket === 'no-match');
for (const r of nm) assert(Number.isInteger(r.div_token) && ['ids', 'text'].includes(r.div_align), JSON.stringify(r));
console.log(`${n} rounds once each, in order, up to ${most} in flight; gen-1 noise splits ${noise.length} ` +
            `(all tie), gen-1/gen-2 no-match ${nm.length} (${nm.map(r => r.tie).join(',')})`);
JS
}

# 1. a 4-lane run, killed with kill -9 once 12 rounds are written, then resumed. Paced (the
# last --pace wins) so the 28 rounds left take over 1.4 s by construction: the kill comes
# on the event (12 rounds), and cannot lose a race with a fast machine finishing first
"${RUN[@]}" --rounds $N --pace 0.2s --quiet 2>"$TMP/run1.err" &
pid=$!
for _ in $(seq 1200); do [ "$(rounds "$L")" -ge 12 ] && break; sleep 0.1; done
kill -9 "$pid" 2>/dev/null || fail "burn-in finished before the kill"
wait "$pid" 2>/dev/null || true
killed_at=$(rounds "$L")
echo "killed with $killed_at rounds written"
"${RUN[@]}" --rounds $N 2>"$TMP/run2.err" || { tail "$TMP/run2.err"; fail "resume exited $?"; }
grep -q "resuming at round $killed_at " "$TMP/run2.err" || { head -5 "$TMP/run2.err"; fail "resume message"; }
check "$L" $N || fail "ledger after kill -9 and resume"
"$TRIT" burnin verify --ledger "$L" >"$TMP/verify.txt" || { cat "$TMP/verify.txt"; fail "one chain across 4 lanes, kill -9 and resume"; }
"$TRIT" burnin stats --ledger "$L" | grep -q "^rounds *$N " || fail "stats rounds"
grep -q "\"next_round\": $N," "$L.state" || fail "state file"
pass "4 lanes, kill -9 at $killed_at, resume: $N rounds once each"

# 2. pace is per lane: 2 lanes x 3 rounds at 1 s take at least 2 s
LP="$TMP/pace.jsonl"
t0=$(date +%s.%N)
"$TRIT" burnin run --v1 "$V1" --v2 "$V2" --prompts "$ROOT/prompts/burnin.jsonl" --concurrency 2 \
  --pace 1s --max-tokens 2 --rounds 6 --quiet --ledger "$LP" || fail "paced run exited $?"
t=$(echo "$(date +%s.%N) - $t0" | bc)
[ "$(rounds "$LP")" -eq 6 ] || fail "paced run rounds"
awk -v t="$t" 'BEGIN { exit !(t >= 2.0) }' || fail "2 lanes x 3 rounds at --pace 1s took ${t}s"
pass "pace per lane (${t}s for 2 x 3 rounds at 1s)"

# 3. spike: a different model as gen-2 halts the run (exit 3); rounds stay gap-free
TINY=$(tiny_model llama f32)
P4=$(free_port)
start_trit_serve "$TINY" "$P4" --slots 4
LS="$TMP/spike.jsonl"
set +e
"$TRIT" burnin run --v1 "$V1" --v2 "http://127.0.0.1:$P4" --prompts "$ROOT/prompts/burnin.jsonl" \
  --concurrency 4 --pace 0 --max-tokens 6 --rounds 60 --spike-min 4 --quiet --ledger "$LS" 2>"$TMP/spike.err"
rc=$?
set -e
[ "$rc" -eq 3 ] || { cat "$TMP/spike.err"; fail "spike: exit $rc, want 3"; }
node - "$LS" <<'JS' || fail "spike ledger"
const assert = require('assert');
const all = require('fs').readFileSync(process.argv[2], 'utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l));
const rounds = all.filter(r => r.type === 'round');
assert(rounds.length >= 4 && rounds.length < 60, rounds.length);
assert.deepStrictEqual(rounds.map(r => r.round), [...Array(rounds.length).keys()]);
const last = all[all.length - 1];
assert(last.type === 'event' && last.event === 'spike' && last.round === rounds.length - 1, JSON.stringify(last));
console.log(`halted after ${rounds.length} rounds`);
JS
pass "spike halts a 4-lane run (exit 3)"

# 4. bad values refused
for v in 0 -1 257 x; do
  set +e
  "$TRIT" burnin run --v1 "$V1" --v2 "$V2" --rounds 1 --concurrency "$v" --ledger "$TMP/bad.jsonl" 2>"$TMP/bad.err"
  rc=$?
  set -e
  [ "$rc" -eq 2 ] && grep -q -- "--concurrency: .*(got .$v.)" "$TMP/bad.err" || fail "--concurrency $v: rc $rc"
done
pass "--concurrency 0/-1/257/x refused (exit 2)"
echo "79_burnin_concurrency: ok"
