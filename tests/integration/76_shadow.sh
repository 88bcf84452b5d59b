#!/usr/bin/env bash
# 76_shadow — trit shadow in front of two trit serve instances (same tiny model):
#  - 20 requests (18 plain, 2 streaming) through the proxy: the client gets the primary's answer
#    (same bytes as asking the primary directly, apart from the per-request id/created fields);
#    the ledger gets 20 "shadow" round records with buckets; added latency printed, and proxied
#    time within 4x the direct time (median ratio, measured in the same run);
#  - a canned primary (status 201, odd Content-Type, binary body) is passed through byte for byte;
#  - candidate down: the client is still served, the ledger says v2-unreachable;
#  - primary down: 502 with an error body; bad flags exit 2.
source "$(dirname "$0")/lib.sh"

M=$(tiny_model bitnet tq2_0)
P1=$(free_port); P2=$(free_port); PX=$(free_port)
start_trit_serve "$M" "$P1"
start_trit_serve "$M" "$P2"
cand_pid=${_pids[-1]}
L="$TMP/shadow.jsonl"
"$TRIT" shadow --listen "127.0.0.1:$PX" --primary "http://127.0.0.1:$P1" --candidate "http://127.0.0.1:$P2" \
  --ledger "$L" >"$TMP/shadow.log" 2>&1 &
shadow_pid=$!
_pids+=($shadow_pid)
wait_http "http://127.0.0.1:$PX/health" 60 || { cat "$TMP/shadow.log"; fail "shadow did not start"; }

# round records (identity records open the ledger and follow a side that went away)
lines() { if [ -f "$L" ]; then grep -c '"type":"round"' "$L" || true; else echo 0; fi; }
wait_lines() { # N
  local i
  for ((i = 0; i < 300; i++)); do [ "$(lines)" -ge "$1" ] && return 0; sleep 0.1; done
  return 1
}
base_lines=$(lines) # the /health probe is not a completion: no record

python3 - "$P1" "$PX" "$TMP" <<'PY' || fail "proxy answers differ from the primary's, or it is slow (above)"
import json, sys, time, urllib.request
p1, px, tmp = sys.argv[1:4]
prompts = ["The capital of France is", "def fib(n):", "Once upon a time", "2 + 2 =", "Hello"]
def call(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        data = r.read()
        return time.perf_counter() - t, r.status, r.headers.get("Content-Type"), data
def norm(b):
    d = json.loads(b); d.pop("id", None); d.pop("created", None); return d
added = []; tds = []; tps = []
for i in range(18):
    chat = i % 2 == 1
    path = "/v1/chat/completions" if chat else "/v1/completions"
    body = {"max_tokens": 8, "temperature": 0}
    if chat: body["messages"] = [{"role": "user", "content": prompts[i % 5] + f" #{i}"}]
    else: body["prompt"] = prompts[i % 5] + f" #{i}"
    td, sd, cd, bd = call(p1, path, body)
    tp, sp, cp, bp = call(px, path, body)
    assert (sd, cd) == (sp, cp), f"status/content-type differ: {(sd, cd)} vs {(sp, cp)}"
    assert norm(bd) == norm(bp), f"request {i}: bodies differ:\n{bd[:300]}\n{bp[:300]}"
    added.append(tp - td); tds.append(td); tps.append(tp)
for i in range(2):
    body = {"prompt": f"Streaming {i}", "max_tokens": 6, "temperature": 0, "stream": True}
    t, s, c, b = call(px, "/v1/completions", body)
    assert s == 200 and c.startswith("text/event-stream"), (s, c)
    assert b.rstrip().endswith(b"data: [DONE]"), b[-200:]
added.sort()
p50 = added[len(added) // 2]; p95 = added[int(0.95 * (len(added) - 1))]
# the gate is a ratio to the same request asked directly in the same run (an absolute bound in
# ms is a coin toss on a loaded machine): the median of proxied/direct times must stay under 4
# (the candidate may share the primary's core: 2 is normal there). It fails for a proxy that
# holds the client's answer back for the candidate plus more, or adds a delay of its own
# larger than a few requests. The ms figures are reported, not gated.
ratios = sorted(b / a for a, b in zip(tds, tps))
ratio = ratios[len(ratios) // 2]
print(f"added latency through the proxy: p50 {1000*p50:.1f} ms, p95 {1000*p95:.1f} ms; "
      f"median proxied/direct {ratio:.2f} (18 requests)")
open(f"{tmp}/ratio", "w").write(f"{ratio:.2f} (added p95 {1000*p95:.1f} ms)")
if ratio >= 4: sys.exit(f"median proxied/direct time {ratio:.2f} >= 4: {[round(r, 2) for r in ratios]}")
PY
pass "20 requests answered with the primary's bytes; median proxied/direct $(cat "$TMP/ratio")"

wait_lines $((base_lines + 20)) || fail "ledger has $(lines) lines, expected 20"
python3 - "$L" <<'PY' || fail "ledger records malformed"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ids = [r for r in recs if r["type"] == "identity"]
assert [r["side"] for r in ids] == ["v1", "v2"], ids  # each side's identity opens the run
recs = [r for r in recs if r["type"] == "round"]
assert len(recs) == 20, len(recs)
assert all(r["type"] == "round" and r["source"] == "shadow" and r["bucket"] for r in recs)
assert sorted(r["round"] for r in recs) == list(range(20))
ex = sum(r["bucket"] == "exact" for r in recs)
print(f"ledger: 20 records, {ex} exact")
assert ex == 20, [r["bucket"] for r in recs]
PY
"$TRIT" burnin stats --ledger "$L" >"$TMP/stats.txt" 2>&1 || { cat "$TMP/stats.txt"; fail "burnin stats cannot read the shadow ledger"; }
pass "ledger: 20 shadow rounds with buckets, readable by burnin stats"

# canned primary: status, content type and bytes verbatim
PC=$(free_port); PX2=$(free_port)
python3 - "$PC" >"$TMP/canned.log" 2>&1 <<'PY' &
import sys, http.server
BODY = bytes(range(256)) + b'{"not": "json"'
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(201); self.send_header("Content-Type", "application/x-odd; charset=latin1")
        self.send_header("Content-Length", str(len(BODY))); self.end_headers(); self.wfile.write(BODY)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
_pids+=($!)
"$TRIT" shadow --listen "127.0.0.1:$PX2" --primary "http://127.0.0.1:$PC" --candidate "http://127.0.0.1:$P2" \
  --ledger "$TMP/canned.jsonl" --quiet >"$TMP/shadow2.log" 2>&1 &
_pids+=($!)
python3 - "$PX2" <<'PY' || fail "canned answer not passed through verbatim"
import sys, time, urllib.request
for _ in range(300):  # until the proxy and the canned primary both listen: 30 s at most
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/completions", data=b'{"prompt":"x"}',
                                     headers={"Content-Type": "application/json"})
        r = urllib.request.urlopen(req, timeout=10); break
    except OSError: time.sleep(0.1)
b = r.read()
assert r.status == 201, r.status
assert r.headers.get("Content-Type") == "application/x-odd; charset=latin1", r.headers.get("Content-Type")
assert b == bytes(range(256)) + b'{"not": "json"', b[:40]
PY
pass "status, Content-Type and binary body passed through verbatim"

# candidate down: still served, ledger says v2-unreachable
kill "$cand_pid"; wait "$cand_pid" 2>/dev/null || true
for i in 1 2 3; do
  code=$(curl -s -o "$TMP/down.json" -w '%{http_code}' "http://127.0.0.1:$PX/v1/completions" \
    -H 'Content-Type: application/json' -d "{\"prompt\":\"down $i\",\"max_tokens\":4,\"temperature\":0}")
  [ "$code" = 200 ] || fail "candidate down: client got HTTP $code"
  grep -q '"choices"' "$TMP/down.json" || fail "candidate down: client got no completion"
done
wait_lines 23 || fail "no records for the candidate-down requests"
[ "$(grep '"type":"round"' "$L" | tail -3 | grep -c '"bucket":"v2-unreachable"')" = 3 ] || { tail -3 "$L" | cut -c1-300; fail "expected v2-unreachable"; }
tail -1 "$L" | grep -q '"cause":"refused' || fail "v2-unreachable without a cause"
# the candidate went away: its identity is read again, cannot be, and is kept (no new record;
# a different server answering there later would be recorded as a change)
[ "$(grep '"type":"identity"' "$L" | grep -c '"side":"v2"')" = 1 ] || fail "v2 identity records: $(grep '"type":"identity"' "$L")"
grep '"type":"round"' "$L" | tail -1 | grep -q '"v2_ident":"[0-9a-f]\{16\}"' || fail "v2 digest dropped while it is down"
pass "candidate down: clients served, ledger says v2-unreachable (refused)"

# primary down: 502 with an error body
kill "${_pids[0]}"; wait "${_pids[0]}" 2>/dev/null || true
code=$(curl -s -o "$TMP/502.json" -w '%{http_code}' "http://127.0.0.1:$PX/v1/completions" -d '{"prompt":"x"}')
[ "$code" = 502 ] && grep -q "unreachable" "$TMP/502.json" || fail "primary down: HTTP $code $(cat "$TMP/502.json")"
pass "primary down: 502 with a clear error"

kill -TERM "$shadow_pid"
wait "$shadow_pid" && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "shadow exited $rc on SIGTERM"
grep -q "stopped:" "$TMP/shadow.log" || fail "no summary on stop"
tail -1 "$TMP/shadow.log"

set +e
"$TRIT" shadow --listen nowhere --primary http://a --candidate http://b 2>/dev/null; r1=$?
"$TRIT" shadow --listen 127.0.0.1:1 --primary ftp://a --candidate http://b 2>/dev/null; r2=$?
"$TRIT" shadow --primary http://a 2>/dev/null; r3=$?
set -e
[ "$r1$r2$r3" = 222 ] || fail "bad flags: exit codes $r1 $r2 $r3"
pass "bad flags exit 2"
