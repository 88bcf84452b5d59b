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
for _ in $(seq 600); do [ -f "$L" ] && [ "$(awk 'NF' "$L" | wc -l)" -ge 4 ] && break; sleep 0.1; done
kill -9 "$V2PID"; wait "$V2PID" 2>/dev/null || true  # a crash: no graceful drain
stopped_at=$(awk 'NF' "$L" | wc -l)
echo "v2 stopped after $stopped_at rounds"
rc=0; wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/run.err"; fail "burnin exited $rc"; }

# a listener that accepts and never answers -> timeout; a wrong base path -> HTTP 404
PB=$(free_port)
python3 -c "
import socket, time, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(8); time.sleep(60)" "$PB" &
_pids+=($!)
sleep 0.5
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$PB" --prompts "$ROOT/prompts/burnin.jsonl" \
  --rounds 14 --pace 0 --max-tokens 4 --timeout 1 --ledger "$L" 2>>"$TMP/run.err" || fail "timeout lane exited $?"
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1/nope" --v2 "http://127.0.0.1:$P1" --prompts "$ROOT/prompts/burnin.jsonl" \
  --rounds 15 --pace 0 --max-tokens 4 --ledger "$L" 2>>"$TMP/run.err" || fail "404 lane exited $?"

python3 - "$L" "$stopped_at" <<'PY' || { tail -20 "$TMP/run.err"; fail "classification"; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
stopped = int(sys.argv[2])
assert [r["round"] for r in recs] == list(range(15)), [r["round"] for r in recs]
first = recs[:12]
un = [r for r in first if r["bucket"] == "v2-unreachable"]
assert un, "no v2-unreachable round after stopping v2"
for r in un:
    assert r["cause"].startswith("refused"), r["cause"]
for r in first:
    assert r["bucket"] in ("exact", "v2-unreachable"), (r["round"], r["bucket"])
# once unreachable, it stays unreachable (the server is gone)
k = first.index(un[0]); assert all(r["bucket"] == "v2-unreachable" for r in first[k:])
assert k >= 3, k
assert recs[12]["bucket"] == "v2-unreachable" and recs[12]["cause"].startswith("timeout"), recs[12]["cause"]
assert recs[13]["bucket"] == "v2-unreachable" and recs[13]["cause"].startswith("timeout")
assert recs[14]["bucket"] == "v1-unreachable" and recs[14]["cause"].startswith("http 404"), recs[14]["cause"]
print(f"{k} exact, {len(un)} v2-unreachable (refused), 2 timeout, 1 http 404; 0 mismatches")
PY
"$TRIT" burnin stats --ledger "$L" | tee "$TMP/stats.txt"
grep -q "no-match         tie=0 real=0 unclassified=0" "$TMP/stats.txt" || fail "unreachable counted as no-match"
set +e; "$TRIT" gate --config "$ROOT/cutover.ini" --ledger "$L" >"$TMP/gate.txt"; rc=$?; set -e
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
python3 - "$LS" <<'PY' || fail "spike ledger"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds = [r for r in recs if r["type"] == "round"]
assert 5 <= len(rounds) < 30, len(rounds)
assert recs[-1]["type"] == "event" and recs[-1]["event"] == "spike", recs[-1]
nm = [r for r in rounds if r["bucket"] == "no-match"]
assert nm and all(r["tie"] in ("tie", "real") and r["split"]["v1"]["top"] for r in nm)
print(f"halted after {len(rounds)} rounds: {len(nm)} no-match, all classified tie/real")
PY
set +e; "$TRIT" gate --config "$ROOT/cutover.ini" --ledger "$LS" >"$TMP/gate-spike.txt"; rc=$?; set -e
[ "$rc" -eq 1 ] && grep -q "^exact-match rate .*FAIL" "$TMP/gate-spike.txt" || fail "gate after spike"
pass "no-match spike halts the run (exit 3)"
echo "72_burnin_unreachable: ok"
