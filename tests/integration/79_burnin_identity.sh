#!/usr/bin/env bash
# 79_burnin_identity — each side's identity in the burn-in ledger, against fake servers whose
# /props can change under a running burn-in (no outage, so only the periodic re-read can see
# it): identity records open the run; --ident-every N reads again every N rounds; a changed
# digest is recorded once, before the rounds that name it; --ident-every 0 reads only at the
# start when nothing fails.
source "$(dirname "$0")/lib.sh"

FAKE="$TMP/fake.py"
cat >"$FAKE" <<'PY'
# fake.py PORT LOG SWITCH_AFTER — an OpenAI-style server that answers every completion with
# the same text; /props and /v1/models name model "a.gguf" until SWITCH_AFTER completions
# were answered (0: never), then "b.gguf". Appends "GET <path>" / "POST <path>" lines to LOG.
import json, sys, threading, http.server
port, log, switch = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
done, lock = [0], threading.Lock()
def model():
    with lock: return "b.gguf" if switch and done[0] >= switch else "a.gguf"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, obj):
        b = json.dumps(obj).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def note(self):
        with lock, open(log, "a") as f: f.write(f"{self.command} {self.path}\n")
    def do_GET(self):
        self.note()
        if self.path == "/props": self.reply({"model_path": model(), "build_info": "b1-fake", "n_ctx": 512})
        elif self.path == "/v1/models": self.reply({"object": "list", "data": [{"id": model(), "object": "model", "owned_by": "llamacpp"}]})
        else: self.reply({"status": "ok"})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.note()
        with lock: done[0] += 1
        self.reply({"object": "text_completion", "model": model(),
                    "choices": [{"index": 0, "text": "same words", "finish_reason": "length"}]})
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
start_fake() { # PORT LOG SWITCH_AFTER
  python3 "$FAKE" "$1" "$2" "$3" >"$TMP/fake-$1.err" 2>&1 &
  _pids+=($!)
  wait_http "http://127.0.0.1:$1/health" 60 || fail "fake server on $1 did not start"
}
P1=$(free_port); P2=$(free_port)
start_fake "$P1" "$TMP/g1.log" 0
start_fake "$P2" "$TMP/g2.log" 6
L="$TMP/ledger.jsonl"
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$P2" --prompts "$ROOT/prompts/burnin.jsonl" \
  --rounds 16 --ident-every 4 --concurrency 2 --pace 0 --max-tokens 2 --ledger "$L" 2>"$TMP/run.err" ||
  { cat "$TMP/run.err"; fail "burnin exited $?"; }
node - "$L" <<'JS' || { cat "$TMP/run.err"; fail "identity records"; }
const assert = require('assert');
const all = require('fs').readFileSync(process.argv[2], 'utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l));
const ids = all.map((r, i) => [r, i]).filter(([r]) => r.type === 'identity');
assert.deepStrictEqual(ids.map(([r]) => r.side), ['v1', 'v2', 'v2'], 'v1 and v2 at the start, v2 once more');
const [[v1], [a, ia], [b, ib]] = ids;
assert(/a\.gguf$/.test(a.ident.model) && /b\.gguf$/.test(b.ident.model), `${a.ident.model} -> ${b.ident.model}`);
assert(a.digest !== b.digest && a.digest === v1.digest, 'digests');
assert(ia < 2 && ib > 2, 'the change is recorded mid-run');
const rounds = all.map((r, i) => [r, i]).filter(([r]) => r.type === 'round');
assert.strictEqual(rounds.length, 16);
for (const [r, i] of rounds) {
  assert.strictEqual(r.v1_ident, v1.digest, `round ${r.round} v1_ident`);
  // a round names the identity read before it started: never the new one before its record
  if (r.v2_ident === b.digest) assert(i > ib, `round ${r.round} names ${b.digest} before its record`);
  else assert.strictEqual(r.v2_ident, a.digest, `round ${r.round} v2_ident ${r.v2_ident}`);
}
assert.strictEqual(rounds[15][0].v2_ident, b.digest, 'the last rounds name the new identity');
console.log(`v2 a.gguf -> b.gguf recorded at line ${ib + 1}; ${rounds.filter(([r]) => r.v2_ident === b.digest).length} rounds name it`);
JS
n1=$(grep -c '^GET /props' "$TMP/g1.log")
[ "$n1" -ge 4 ] || fail "--ident-every 4 over 16 rounds: gen-1 /props read $n1 times, want >= 4"
pass "identity: records at the start, re-read every 4 rounds ($n1 reads), a change recorded once before its rounds"

# --ident-every 0 and nothing failing: one read per side, at the start (two servers: the
# burn-in refuses one server on both sides)
P3=$(free_port)
start_fake "$P3" "$TMP/g3.log" 0
: >"$TMP/g1.log"
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$P3" --prompts "$ROOT/prompts/burnin.jsonl" \
  --rounds 8 --ident-every 0 --concurrency 2 --pace 0 --max-tokens 2 --quiet --ledger "$TMP/l0.jsonl" ||
  fail "burnin --ident-every 0 exited $?"
n1=$(grep -c '^GET /props' "$TMP/g1.log") n3=$(grep -c '^GET /props' "$TMP/g3.log")
[ "$n1" -eq 1 ] && [ "$n3" -eq 1 ] ||
  fail "--ident-every 0: /props read $n1 and $n3 times, want 1 each (at the start)"
pass "--ident-every 0: read at the start only"
echo "79_burnin_identity: ok"
