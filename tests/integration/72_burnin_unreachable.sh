#!/usr/bin/env bash
# 72_burnin_unreachable — a server stopped mid-run is reported as v2-unreachable (cause:
# refused), never as a mismatch; a server that never answers is a timeout; a wrong path is an
# HTTP status. Nothing unreachable ever lands in exact / prefix-only / no-match.
source "$(dirname "$0")/lib.sh"

MODEL=$(tiny_model llama f32)
P1=$(free_port); P2=$(free_port)
LLAMA_THREADS=1 start_llama_server "$MODEL" "$P1"
LLAMA_THREADS=1 start_llama_server "$MODEL" "$P2"
V2PID=${_pids[-1]}
L="$TMP/ledger.jsonl"

"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$P2" \
  --prompts "$ROOT/prompts/burnin.jsonl" --rounds 12 --pace 0.3s --max-tokens 4 --timeout 10 \
  --ledger "$L" 2>"$TMP/run.err" &
pid=$!
rounds() { grep -c '"type":"round"' "$1" || true; }
for _ in $(seq 600); do [ -f "$L" ] && [ "$(rounds "$L")" -ge 4 ] && break; sleep 0.1; done
kill -9 "$V2PID"; wait "$V2PID" 2>/dev/null || true  # a crash: no graceful drain
stopped_at=$(rounds "$L")
echo "v2 stopped after $stopped_at rounds"
rc=0; wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/run.err"; fail "burnin exited $rc"; }
cp "$L" "$TMP/first.jsonl" # one run against one pair of servers: what the gate judges below

# a listener that accepts and never answers -> timeout; a wrong base path -> HTTP 404. The
# timeout binds gen-1 too (a real server, 4 tokens): 3 s, not 1, so a loaded machine's gen-1
# is never the side that times out; the silent side times out whatever the value
PB=$(free_port)
node -e 'const s = require("net").createServer(() => {}); s.listen(+process.argv[1], "127.0.0.1"); setTimeout(() => process.exit(0), 600000)' "$PB" &
_pids+=($!)
# until it listens (a loaded machine starts node slowly; a refused round would not be a timeout)
for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PB") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$PB") 2>/dev/null || fail "the silent listener never listened (60 s)"
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$PB" --prompts "$ROOT/prompts/burnin.jsonl" \
  --rounds 14 --pace 0 --max-tokens 4 --timeout 3 --ledger "$L" 2>>"$TMP/run.err" || fail "timeout lane exited $?"
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1/nope" --v2 "http://127.0.0.1:$P1" --prompts "$ROOT/prompts/burnin.jsonl" \
  --rounds 15 --pace 0 --max-tokens 4 --ledger "$L" 2>>"$TMP/run.err" || fail "404 lane exited $?"

node - "$L" <<'JS' || { tail -20 "$TMP/run.err"; fail "classification"; }
const assert = require('assert');
const all = require('fs').readFileSync(process.argv[2], 'utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l));
const recs = all.filter(r => r.type === 'round');
assert.deepStrictEqual(recs.map(r => r.round), [...Array(15).keys()]);
// each run opens with each side's identity; one that cannot be read (the silent listener,
// the wrong path) is recorded as unknown, never guessed; a side that went down mid-run keeps
// the identity it had (no record while it is down)
const ids = all.filter(r => r.type === 'identity').map(r => `${r.side}:${r.digest ? 'known' : 'unknown'}`);
assert.deepStrictEqual(ids, ['v1:known', 'v2:known', 'v1:known', 'v2:unknown', 'v1:unknown', 'v2:known'], ids.join(' '));
assert(all.filter(r => r.type === 'identity' && !r.digest).every(r => r.ident === null && r.error), 'unknown record');
assert(recs.slice(0, 12).every(r => r.v2_ident === recs[0].v2_ident), 'v2 keeps its identity while down');
assert(recs.slice(12, 14).every(r => r.v2_ident === undefined), 'unknown v2: no digest');
const first = recs.slice(0, 12);
const un = first.filter(r => r.bucket === 'v2-unreachable');
assert(un.length, 'no v2-unreachable round after stopping v2');
for (const r of un) assert(r.cause.startsWith('refused'), r.cause);
for (const r of first) assert(['exact', 'v2-unreachable'].includes(r.bucket), `${r.round} ${r.bucket}`);
// once unreachable, it stays unreachable (the server is gone)
const k = first.indexOf(un[0]);
assert(first.slice(k).every(r => r.bucket === 'v2-unreachable') && k >= 3, `k=${k}`);
assert(recs[12].bucket === 'v2-unreachable' && recs[12].cause.startsWith('timeout'), recs[12].cause);
assert(recs[13].bucket === 'v2-unreachable' && recs[13].cause.startsWith('timeout'), recs[13].cause);
assert(recs[14].bucket === 'v1-unreachable' && recs[14].cause.startsWith('http 404'), recs[14].cause);
console.log(`${k} exact, ${un.length} v2-unreachable (refused), 2 timeout, 1 http 404; 0 mismatches`);
JS
"$TRIT" burnin stats --ledger "$L" | tee "$TMP/stats.txt"
grep -q "no-match         tie=0 real=0 unclassified=0" "$TMP/stats.txt" || fail "unreachable counted as no-match"
set +e; "$TRIT" gate --config "$ROOT/cutover.ini" --ledger "$TMP/first.jsonl" >"$TMP/gate.txt"; rc=$?; set -e
cat "$TMP/gate.txt"
[ "$rc" -eq 1 ] && grep -q "^v2 unreachable .*FAIL" "$TMP/gate.txt" || fail "gate did not fail v2 unreachable"
pass "unreachable is never a mismatch"

# spike: a different model as v2 gives no-match rounds; > 20% in the hour halts with exit 3
MODEL2=$(tiny_model llama f32 --seed 2)
P3=$(free_port)
LLAMA_THREADS=1 start_llama_server "$MODEL2" "$P3"
LS="$TMP/spike.jsonl"
set +e
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$P3" --prompts "$ROOT/prompts/burnin.jsonl" \
  --rounds 30 --pace 0 --max-tokens 6 --spike-min 5 --ledger "$LS" 2>"$TMP/spike.err"
rc=$?
set -e
tail -3 "$TMP/spike.err"
[ "$rc" -eq 3 ] || fail "spike: exit $rc, want 3"
grep -q "spike" "$TMP/spike.err" || fail "no spike message"
node - "$LS" <<'JS' || fail "spike ledger"
const assert = require('assert');
const recs = require('fs').readFileSync(process.argv[2], 'utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l));
const rounds = recs.filter(r => r.type === 'round');
assert(rounds.length >= 5 && rounds.length < 30, rounds.length);
const last = recs[recs.length - 1];
assert(last.type === 'event' && last.event === 'spike', JSON.stringify(last));
const nm = rounds.filter(r => r.bucket === 'no-match');
assert(nm.length && nm.every(r => ['tie', 'real'].includes(r.tie) && r.split.v1.top.length));
console.log(`halted after ${rounds.length} rounds: ${nm.length} no-match, all classified tie/real`);
JS
set +e; "$TRIT" gate --config "$ROOT/cutover.ini" --ledger "$LS" >"$TMP/gate-spike.txt"; rc=$?; set -e
[ "$rc" -eq 1 ] && grep -q "^exact-match rate .*FAIL" "$TMP/gate-spike.txt" || fail "gate after spike"
pass "no-match spike halts the run (exit 3)"
echo "72_burnin_unreachable: ok"

# bad option values are refused with a clear message (exit 2), never clamped or guessed
for opt in "--rounds 99999999999999999999999" "--rounds -4" "--rounds 12x" "--max-tokens 0"; do
  set +e
  # shellcheck disable=SC2086
  "$TRIT" burnin run --v1 http://127.0.0.1:9 --v2 http://127.0.0.1:9 $opt --ledger "$TMP/bad.jsonl" \
    >/dev/null 2>"$TMP/bad.err"
  rc=$?
  set -e
  [ "$rc" -eq 2 ] && grep -q "(got '" "$TMP/bad.err" || fail "burnin run $opt: rc $rc, $(cat "$TMP/bad.err")"
done
[ ! -s "$TMP/bad.jsonl" ] || fail "a refused run wrote to its ledger"
pass "bad option values refused with exit 2"
