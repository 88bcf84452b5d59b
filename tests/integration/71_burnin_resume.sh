#!/usr/bin/env bash
# 71_burnin_resume — kill -9 a burn-in twice (and fake a crash mid-line), resume with the same
# command: the ledger holds every round exactly once. Also: SIGINT stops cleanly (exit 0).
source "$(dirname "$0")/lib.sh"

MODEL=$(tiny_model llama f32)
P1=$(free_port); P2=$(free_port)
LLAMA_THREADS=1 start_llama_server "$MODEL" "$P1"
LLAMA_THREADS=1 start_llama_server "$MODEL" "$P2"
L="$TMP/ledger.jsonl"
N=24
RUN=("$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$P2"
  --prompts "$ROOT/prompts/burnin.jsonl" --rounds $N --pace 0.3s --max-tokens 4 --ledger "$L")
lines() { if [ -f "$L" ]; then awk 'NF' "$L" | wc -l; else echo 0; fi; }

for want in 4 10; do
  "${RUN[@]}" --quiet 2>>"$TMP/run.err" &
  pid=$!
  for _ in $(seq 600); do [ "$(lines)" -ge "$want" ] && break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || fail "burn-in finished before the kill"; wait "$pid" 2>/dev/null || true
  echo "killed with $(lines) lines in the ledger"
done
# a crash in the middle of writing a line
printf '{"type":"round","source":"burnin","round":99' >>"$L"
"${RUN[@]}" 2>"$TMP/resume.err" || { cat "$TMP/resume.err"; fail "resume exited $?"; }
grep -q "resuming at round" "$TMP/resume.err" || fail "no resume message"
# the writer cuts the fragment off when it opens the ledger (the chain continues from the last
# complete line), and says so
grep -qi "incomplete\|truncated" "$TMP/resume.err" || fail "truncated line not warned about"
node - "$L" "$N" <<'JS' || fail "ledger after resume"
const assert = require('assert');
const n = +process.argv[3], good = [];
let bad = 0;
for (const line of require('fs').readFileSync(process.argv[2], 'utf8').split('\n')) {
  if (!line.trim()) continue;
  try { good.push(JSON.parse(line)); } catch { bad++; }
}
const rounds = good.filter(r => r.type === 'round').map(r => r.round);
assert.deepStrictEqual([...rounds].sort((a, b) => a - b), [...Array(n).keys()], `rounds ${rounds}`);
assert.strictEqual(new Set(rounds).size, n, 'duplicates');
assert.strictEqual(bad, 0, `${bad} malformed lines (the injected fragment is cut off on open)`);
console.log(`${rounds.length} rounds, 0 lost, 0 duplicated, the truncated line cut off`);
JS
"$TRIT" burnin stats --ledger "$L" 2>"$TMP/stats.err" | grep -q "^rounds *$N " || fail "stats rounds"
"$TRIT" burnin verify --ledger "$L" >/dev/null || fail "chain broken after kill -9 and a cut-off fragment"
# state file matches the ledger
grep -q "\"next_round\": $N," "$L.state" ||
  fail "state file"
# already complete: nothing to do, exit 0, nothing appended
before=$(lines)
"${RUN[@]}" --quiet 2>/dev/null || fail "rerun of a complete burn-in exited $?"
[ "$(lines)" -eq "$before" ] || fail "rerun appended lines"
pass "kill -9 twice + truncated line: $N rounds, none lost or duplicated"

# SIGINT: clean stop after the current round, exit 0, last line complete
L3="$TMP/sigint.jsonl"
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$P2" \
  --prompts "$ROOT/prompts/burnin.jsonl" --forever --pace 0.2s --max-tokens 4 --ledger "$L3" 2>"$TMP/int.err" &
pid=$!
for _ in $(seq 600); do [ -f "$L3" ] && [ "$(grep -c . "$L3")" -ge 3 ] && break; sleep 0.1; done
kill -INT "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/int.err"; fail "SIGINT exit code $rc"; }
grep -q "stopped by signal" "$TMP/int.err" || fail "no clean-stop message"
[ "$(tail -c 1 "$L3" | od -An -c | tr -d ' ')" = '\n' ] || fail "last ledger line incomplete after SIGINT"
pass "SIGINT stops cleanly"
echo "71_burnin_resume: ok"
