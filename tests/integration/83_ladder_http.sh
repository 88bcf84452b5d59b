#!/usr/bin/env bash
# 83_ladder_http — the ladder between two servers, as the seeds' operator runs it (issue 19):
#  1. llama-server vs trit serve on the demo model: rungs 0-5 run and pass, exit 0; the receipt
#     holds both identities (same model sha256), the thresholds for top-N data, N, each side's
#     scoring mode and every rung's count (rung 4: every position; rung 5: >= 1 token).
#  2. Failing candidates fail at the right rung, over HTTP: a bitnet model whose metadata says
#     relu2, served by llama-server (SiLU: upstream ignores the key) and trit serve (relu²):
#     rung 3, exit 1, and --bisect gives the shortest failing prefix and says the trace is
#     unavailable over http; llama-server vs an in-process trit forced to relu² (act=relu2):
#     rung 3; trit serve on another model file: rung 0 names both sha256.
#  3. Broken servers (a stub proxy in front of trit serve): short or malformed log-probabilities,
#     another vocabulary, a timeout -> exit 2, SETUP FAILURE naming the side and the request;
#     a server that reports no model identity or n_vocab -> exit 3, rungs 0 and 2 SKIPPED.
#  4. --max-tokens 0 and -1 are usage errors (exit 2).
source "$(dirname "$0")/lib.sh"
[ -x "$(ref_bin llama-server)" ] || fail "reference llama-server not built; run scripts/setup"
DEMO="$ROOT/models/kjv-bitnet-tq2_0.gguf"
[ -s "$DEMO" ] || fail "demo model $DEMO missing"
P1="In the beginning God created the heaven and the earth."
P2="And God said, Let there be light: and there was light. And God saw the light"

# ---- 1. llama-server vs trit serve, demo model: every rung passes ----
lport=$(free_port)
start_llama_server "$DEMO" "$lport"
tport=$(free_port)
start_trit_serve "$DEMO" "$tport"
LREF="http://127.0.0.1:$lport" TCAND="http://127.0.0.1:$tport"
rc=0
"$TRIT" ladder --ref "$LREF" --cand "$TCAND" --prompt "$P1" --prompt "$P2" --max-tokens 16 \
  -o "$TMP/demo.json" >"$TMP/demo.txt" || rc=$?
cat "$TMP/demo.txt"
[ "$rc" -eq 0 ] || fail "llama-server vs trit serve: exit $rc (want 0)"
grep -q "RESULT: PASS" "$TMP/demo.txt" || fail "no PASS line"
grep -q "on top-N data: kl" "$TMP/demo.txt" || fail "top-N thresholds not printed"
python3 - "$TMP/demo.json" <<'PY' || fail "demo receipt"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["result"] == "pass" and r["logits"] == "top-n", (r["result"], r["logits"])
ri, ci = r["ref_identity"], r["cand_identity"]
assert ri["engine"] == "llama.cpp" and ci["engine"] == "trit", (ri["engine"], ci["engine"])
assert len(ri["model_sha256"]) == 64 and ri["model_sha256"] == ci["model_sha256"]
assert ri["model_size"] > 0 and ci["model_size"] > 0 and ri["build"] and ci["build"]
for k in ("topn_kl", "topn_first_maxabs", "topn_maxabs", "topn_top5", "topn_cover"):
    assert k in r["thresholds"], f"threshold {k} missing"
assert r["preflight"][0]["status"] == "pass" and r["preflight"][0]["compared"] == 1
assert len(r["prompts"]) == 2
for p in r["prompts"]:
    st = {x["rung"]: x for x in p["rungs"]}
    assert sorted(st) == [1, 2, 3, 4, 5], sorted(st)
    assert all(x["status"] == "pass" for x in st.values()), [x["detail"] for x in st.values()]
    assert st[4]["compared"] == p["n_tokens"] >= 1 and st[5]["compared"] >= 1, st
    tn = p["top_n"]
    assert tn["compared"] >= 5 and tn["ref_scoring"] == "forced" and tn["cand_scoring"] == "echo", tn
    m = st[4]["metrics"]
    print(f"ok: prompt {p['prompt'][:30]!r}: {p['n_tokens']} positions, top-{tn['compared']}: "
          f"max kl {m['max_kl']:.3g}, max-abs {m['max_abs']:.3g}, min cover {m['cover_min']:.4f}")
PY
pass "llama-server vs trit serve on the demo model: rungs 0-5 pass, exit 0"

# ---- 2. failing candidates fail at the right rung ----
R=$(tiny_model bitnet tq2_0 --act relu2)
rlport=$(free_port)
LLAMA_CTX=512 start_llama_server "$R" "$rlport"
rtport=$(free_port)
start_trit_serve "$R" "$rtport" --ctx 512
rc=0
"$TRIT" ladder --ref "http://127.0.0.1:$rlport" --cand "http://127.0.0.1:$rtport" \
  --prompt "The quick brown fox jumps over the lazy dog" --bisect -o "$TMP/relu2.json" \
  >"$TMP/relu2.txt" || rc=$?
cat "$TMP/relu2.txt"
[ "$rc" -eq 1 ] || fail "relu2 (trit serve) vs SiLU (llama-server): exit $rc (want 1)"
grep -q "trace unavailable over http" "$TMP/relu2.txt" || fail "--bisect over http: no plain word"
python3 - "$TMP/relu2.json" <<'PY' || fail "relu2 over http: wrong rung"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["preflight"][0]["status"] == "pass", r["preflight"]      # same file on both sides
ff = r["first_failure"]
assert ff["rung"] == 3, f"first failing rung {ff}"
b = r["prompts"][0]["bisect"]
assert b["shortest_failing_prefix"] == 1 and "unavailable over http" in b["trace_error"], b
print(f"ok: relu2 vs SiLU over http caught at rung 3; shortest failing prefix 1")
PY

rc=0
"$TRIT" ladder --ref "$LREF" --cand "trit:$DEMO?act=relu2" --prompt "$P1" --threads 1 \
  -o "$TMP/mixed.json" >"$TMP/mixed.txt" || rc=$?
cat "$TMP/mixed.txt"
[ "$rc" -eq 1 ] || fail "llama-server vs trit act=relu2: exit $rc (want 1)"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["first_failure"]["rung"] == 3 and r["logits"] == "top-n", r["first_failure"]' \
  "$TMP/mixed.json" || fail "llama-server vs trit act=relu2: wrong rung"
pass "llama-server vs in-process trit with relu² forced: rung 3 (top-N on both sides)"

rc=0
"$TRIT" ladder --ref "$LREF" --cand "http://127.0.0.1:$rtport" --prompt "$P1" \
  >"$TMP/other.txt" || rc=$?
cat "$TMP/other.txt"
[ "$rc" -eq 1 ] || fail "another model file: exit $rc (want 1)"
grep -q "rung 0 preflight   FAIL        model files differ: ref sha256 [0-9a-f]\{64\}, cand sha256 [0-9a-f]\{64\}" \
  "$TMP/other.txt" || fail "another model file: rung 0 does not name both sha256"
pass "another model file: rung 0 fails naming both sha256"
"$TRIT" ladder --ref "$LREF" --cand "http://127.0.0.1:$rtport" --prompt "$P1" --other-models \
  >"$TMP/other2.txt" || true
grep -q "rung 0 preflight   PASS        different model files, as --other-models says" \
  "$TMP/other2.txt" || fail "--other-models: rung 0 does not pass on two known sha256"
pass "--other-models: two known, different sha256 pass rung 0"

# ---- 3. broken servers: a stub proxy in front of trit serve ----
cat >"$TMP/stub.py" <<'PY'
# Forwards every request to a real server and breaks its replies one way (argv: PORT UPSTREAM
# MODE): short (every top log-probability list cut to 1 entry), malformed (every logprob +5),
# vocab (n_vocab reported 1000 larger), hang (completions answer after 5 s), anon (/props and
# /v1/models without model path, sha256, sizes, n_vocab or trit's identity object); on decode
# requests only (max_tokens > 1): shortgen (top lists cut to 1 entry), nogen (no tokens).
import http.server, json, sys, time, urllib.error, urllib.request
PORT, UP, MODE = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]
HIDE = ("model_path", "model_sha256", "sha256", "model_size", "file_size", "size", "n_vocab", "trit")
def walk(x, fn):
    if isinstance(x, dict): return {k: fn(k, walk(v, fn)) for k, v in x.items()}
    if isinstance(x, list): return [walk(v, fn) for v in x]
    return x
def short(k, v):
    if k in ("top_logprobs", "probs") and isinstance(v, list): return v[:1]
    if k == "top_logprobs" and isinstance(v, dict): return dict(list(v.items())[:1])
    return v
def malformed(k, v):
    if k == "logprob" and isinstance(v, (int, float)): return 5.0
    if k == "top_logprobs" and isinstance(v, list):
        return [{t: 5.0 for t in e} if isinstance(e, dict) else e for e in v]
    return v
def vocab(k, v): return v + 1000 if k == "n_vocab" and isinstance(v, int) else v
def nogen(k, v):
    if k in ("content", "tokens", "token_logprobs", "top_logprobs", "text_offset") and isinstance(v, list): return []
    return "" if k == "text" else v
def anon(x):
    if isinstance(x, dict): return {k: anon(v) for k, v in x.items() if k not in HIDE}
    if isinstance(x, list): return [anon(v) for v in x]
    return x
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def forward(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        completion, ident = "completion" in self.path, self.path.startswith(("/props", "/v1/models"))
        # hang: 30 s, far past the client's 2 s timeout (5 s left a loaded machine 3 s of slack)
        if MODE == "hang" and completion: time.sleep(30)
        try: decode = completion and json.loads(body or b"{}").get("max_tokens", 16) > 1
        except ValueError: decode = False
        req = urllib.request.Request(UP + self.path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r: code, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, data = e.code, e.read()
        try:
            j = json.loads(data)
            if completion and MODE == "short": j = walk(j, short)
            if completion and MODE == "malformed": j = walk(j, malformed)
            if decode and MODE == "shortgen": j = walk(j, short)
            if decode and MODE == "nogen": j = walk(j, nogen)
            if ident and MODE == "vocab": j = walk(j, vocab)
            if ident and MODE == "anon": j = anon(j)
            data = json.dumps(j).encode()
        except ValueError:
            pass
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self): self.forward("GET")
    def do_POST(self): self.forward("POST")
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
PY

# stub MODE WANT_RC PATTERN [ref] — the ladder with trit serve behind the stub as the
# candidate, or (ref) with llama-server behind it as the reference (its "forced" scoring)
stub() {
  local mode="$1" want="$2" pattern="$3" side="${4:-cand}" sport rc=0 up="$TCAND"
  [ "$side" = ref ] && up="$LREF"
  sport=$(free_port)
  python3 "$TMP/stub.py" "$sport" "$up" "$mode" &
  local spid=$!
  _pids+=("$spid")
  wait_http "http://127.0.0.1:$sport/health" 60 || fail "stub ($mode) did not start"
  local broken="http://127.0.0.1:$sport?timeout=2" ref="$LREF" cand="$TCAND"
  if [ "$side" = ref ]; then ref="$broken"; else cand="$broken"; fi
  "$TRIT" ladder --ref "$ref" --cand "$cand" --prompt "$P1" -o "$TMP/stub-$mode-$side.json" \
    >"$TMP/stub-$mode-$side.txt" || rc=$?
  kill "$spid" 2>/dev/null || true
  cat "$TMP/stub-$mode-$side.txt"
  [ "$rc" -eq "$want" ] || fail "stub $mode ($side): exit $rc (want $want)"
  grep -qE -- "$pattern" "$TMP/stub-$mode-$side.txt" || fail "stub $mode ($side): no '$pattern'"
  grep -q "RESULT: PASS" "$TMP/stub-$mode-$side.txt" && fail "stub $mode ($side): PASS"
  [ "$want" -ne 2 ] || grep -q "RESULT: SETUP FAILURE" "$TMP/stub-$mode-$side.txt" ||
    fail "stub $mode ($side): no SETUP FAILURE line"
  pass "stub $mode ($side): exit $want ($pattern)"
}
# (a server that gives fewer than 2 alternatives already fails the backend's scoring probe,
# which calls that "unavailable"; either way the run is a SETUP FAILURE naming the side)
stub short 2 "setup-failure cand \(echo scoring\): .*short or malformed log-probabilities at position 0"
stub short 2 "(setup-failure|unavailable) ref \(.* scoring\): .*log-probabilities" ref
stub malformed 2 "setup-failure cand \(echo scoring\): .*log-probabilit"
stub malformed 2 "(setup-failure|unavailable) ref \(.* scoring\): .*log-probabilit" ref
stub vocab 2 "rung 2 shapes      setup-failure different vocabularies: ref reports n_vocab 2048, cand 3048"
stub hang 2 "setup-failure cand \(.* scoring\): .*no reply within 2"
stub shortgen 2 "rung 5 decode      setup-failure cand: short or malformed log-probabilities at decode step 0"
stub anon 3 "rung 0 preflight   SKIPPED     not reported: cand build, cand model_sha256, cand model_size"
grep -q "rung 2 shapes      SKIPPED     not reported: cand n_vocab" "$TMP/stub-anon-cand.txt" ||
  fail "stub anon: rung 2 not SKIPPED"
grep -q "RESULT: INCOMPLETE" "$TMP/stub-anon-cand.txt" || fail "stub anon: not INCOMPLETE"

# a decode rung that compared no token (both servers answer decode requests with none) is
# SKIPPED, never a pass
nport=$(free_port) mport=$(free_port)
python3 "$TMP/stub.py" "$nport" "$LREF" nogen &
_pids+=($!)
python3 "$TMP/stub.py" "$mport" "$TCAND" nogen &
_pids+=($!)
wait_http "http://127.0.0.1:$nport/health" 60 && wait_http "http://127.0.0.1:$mport/health" 60 ||
  fail "nogen stubs did not start"
rc=0
"$TRIT" ladder --ref "http://127.0.0.1:$nport" --cand "http://127.0.0.1:$mport" --prompt "$P1" \
  -o "$TMP/nogen.json" >"$TMP/nogen.txt" || rc=$?
cat "$TMP/nogen.txt"
[ "$rc" -eq 3 ] || fail "no decode tokens on either side: exit $rc (want 3)"
grep -q "rung 5 decode      SKIPPED     0/16 greedy tokens identical — but compared nothing" \
  "$TMP/nogen.txt" || fail "no decode tokens: rung 5 not SKIPPED"
pass "a decode rung that compared 0 tokens is SKIPPED (exit 3)"

# ---- 4. --max-tokens must compare at least one token ----
for m in 0 -1; do
  rc=0
  "$TRIT" ladder --ref "$LREF" --cand "$TCAND" --prompt x --max-tokens "$m" >/dev/null \
    2>"$TMP/mt.err" || rc=$?
  [ "$rc" -eq 2 ] && grep -q "max-tokens $m: expected 1..100000" "$TMP/mt.err" ||
    fail "--max-tokens $m: exit $rc ($(cat "$TMP/mt.err"))"
done
pass "--max-tokens 0 and -1 are usage errors (exit 2)"
