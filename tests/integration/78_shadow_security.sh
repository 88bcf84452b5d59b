#!/usr/bin/env bash
# 78_shadow_security — the attacks of issue 13 against `trit shadow`, with tiny Python upstreams
# that record what reaches them and a decoy HTTP server that must never be reached:
#  - SSRF: request-targets with '@host', '//host', absolute-form, authority-form, '*',
#    %2F/%40/%2E-encoded tricks, backslashes, dot segments, CR/LF and control bytes -> 400,
#    the decoy sees nothing; a query string is forwarded;
#  - a 3 MB body -> 413 with the proxy alive (Content-Length and chunked);
#  - a 10 kB header -> 431; the proxy's own key (--api-key-file 0600 only; 401 without it);
#    GET /health open without it, other methods on /health not; open doors (http's rule): a
#    non-loopback listener without a key and TRIT_API_KEY= refuse to start; HTTP/1.1 without
#    Host or with two Host headers -> 400;
#  - gen-2 receives no client Authorization unless --forward-auth; its own key via
#    $TRIT_CANDIDATE_API_KEY / --candidate-key-file;
#  - SIGTERM with a hung gen-2 and a hung gen-1 request exits within --grace + a few seconds;
#  - kill -9 at random moments under load: every ledger line that survives reopening parses,
#    rounds are never reused, and the records already written are never lost.
source "$(dirname "$0")/lib.sh"

UP="$TMP/upstream.py"
cat >"$UP" <<'PY'
# upstream.py PORT LOG MODE — a fake OpenAI server. Appends one JSON line per request to LOG
# (method, target, headers). MODE ok: answers; hang: never answers /v1/* POSTs;
# slowget: GET /slow sleeps 60 s.
import json, sys, time, http.server, socketserver
port, log, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def rec(self, body=b""):
        with open(log, "a") as f:
            f.write(json.dumps({"method": self.command, "target": self.path,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": len(body)}) + "\n")
    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        self.rec()
        if self.path.startswith("/slow"): time.sleep(60)
        self.reply(200, {"status": "ok", "from": "upstream", "target": self.path})
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.rec(body)
        if mode == "hang": time.sleep(3600)
        self.reply(200, {"id": "x", "object": "text_completion", "model": "fake",
                         "choices": [{"index": 0, "text": " Paris", "finish_reason": "length"}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
PY

start_up() { # PORT LOG MODE
  python3 "$UP" "$1" "$2" "$3" >/dev/null 2>&1 &
  _pids+=($!)
  wait_http "http://127.0.0.1:$1/health" 60 || fail "upstream on $1 did not start"
}
start_shadow() { # PORT LEDGER [args...] ; sets SH_PID
  local port="$1" ledger="$2"; shift 2
  "$TRIT" shadow --listen "127.0.0.1:$port" --primary "http://127.0.0.1:$G1" \
    --candidate "http://127.0.0.1:$G2" --ledger "$ledger" "$@" >>"$TMP/shadow-$port.log" 2>&1 &
  SH_PID=$!
  _pids+=($SH_PID)
  wait_http "http://127.0.0.1:$port/health" 60 || { cat "$TMP/shadow-$port.log"; fail "shadow did not start"; }
}

# decoy: a plain HTTP server with a secret file; it must never be asked for anything
DECOY=$(free_port)
mkdir -p "$TMP/decoy" && echo "DECOY-SECRET" >"$TMP/decoy/s.txt"
(cd "$TMP/decoy" && exec python3 -m http.server "$DECOY" --bind 127.0.0.1 >"$TMP/decoy.log" 2>&1) &
_pids+=($!)
wait_http "http://127.0.0.1:$DECOY/" 60 || fail "the decoy did not start" # else its silence proves nothing
: >"$TMP/decoy.log" # forget the readiness probe

G1=$(free_port); G2=$(free_port); PX=$(free_port)
start_up "$G1" "$TMP/g1.jsonl" ok
start_up "$G2" "$TMP/g2.jsonl" ok
start_shadow "$PX" "$TMP/l1.jsonl"

# --- SSRF: raw request lines (curl normalises some of these, so a socket sends them) ---
python3 - "$PX" "$DECOY" <<'PY' || fail "SSRF probes"
import socket, sys
px, d = int(sys.argv[1]), sys.argv[2]
targets = [f"@127.0.0.1:{d}/s.txt", f"//127.0.0.1:{d}/s.txt", f"http://127.0.0.1:{d}/s.txt",
           f"127.0.0.1:{d}", "*", f"/%2F127.0.0.1:{d}/s.txt", f"/%2f%2f127.0.0.1:{d}/s.txt",
           f"/%40127.0.0.1:{d}/s.txt", f"/v1/%2E%2E/%2E%2E/s.txt", "/v1/../../s.txt", "/./s.txt",
           f"/\\\\127.0.0.1:{d}/s.txt", "/a\\b", "/a%00b", "/a%0d%0aHost:%20x", "/a\x01b",
           "/a%zz", "/a%4", f"/@127.0.0.1:{d}/s.txt", "/x?a#b", "/x?a\\b", "/x\x7f"]
bad = []
for t in targets:
    s = socket.create_connection(("127.0.0.1", px), timeout=10)
    s.sendall(f"GET {t} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("latin1"))
    data = b""
    while True:
        b = s.recv(65536)
        if not b: break
        data += b
    s.close()
    status = data.split(b" ", 2)[1] if data.startswith(b"HTTP/") else b"?"
    if b"DECOY-SECRET" in data or b"from" in data or status != b"400":
        bad.append((t, status, data[:200]))
    elif b'"error"' not in data and b"Bad Request" not in data:
        bad.append((t, "no error body", data[:200]))
for b in bad: print("accepted:", b)
print(f"{len(targets) - len(bad)} of {len(targets)} SSRF request-targets refused with 400")
sys.exit(1 if bad else 0)
PY
[ ! -s "$TMP/decoy.log" ] || { cat "$TMP/decoy.log"; fail "the decoy server was reached"; }
# the same with CR/LF inside a header value is refused by the HTTP parser itself
pass "SSRF request-targets refused (400); the decoy server was never reached"

code=$(curl -s -o "$TMP/q.json" -w '%{http_code}' "http://127.0.0.1:$PX/v1/models?limit=5&after=a%20b")
[ "$code" = 200 ] && grep -q '"target": "/v1/models?limit=5&after=a%20b"' "$TMP/q.json" ||
  fail "query string not forwarded: HTTP $code $(cat "$TMP/q.json")"
grep -q "127.0.0.1:$DECOY" "$TMP/g1.jsonl" && fail "an SSRF target reached gen-1"
pass "query strings are forwarded to gen-1 verbatim"

# --- body limit: 3 MB -> 413, proxy alive; chunked too ---
head -c 3000000 /dev/zero | tr '\0' a >"$TMP/big.txt"
code=$(curl -s -o "$TMP/413.json" -w '%{http_code}' "http://127.0.0.1:$PX/v1/completions" \
  -H 'Content-Type: application/json' --data-binary @"$TMP/big.txt")
[ "$code" = 413 ] && grep -q '"error"' "$TMP/413.json" || fail "3 MB body: HTTP $code $(head -c 300 "$TMP/413.json")"
code=$(curl -s -o "$TMP/413c.json" -w '%{http_code}' "http://127.0.0.1:$PX/v1/completions" \
  -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' --data-binary @"$TMP/big.txt")
[ "$code" = 413 ] || fail "3 MB chunked body: HTTP $code $(head -c 300 "$TMP/413c.json")"
curl -sf -o /dev/null "http://127.0.0.1:$PX/health" || fail "proxy dead after the 3 MB bodies"
kill -0 "$SH_PID" || fail "proxy process gone"
pass "3 MB body -> 413 (Content-Length and chunked), proxy alive"

# --- long header -> 431 (not truncated) ---
long=$(head -c 10000 /dev/zero | tr '\0' k)
code=$(curl -s -o "$TMP/431.json" -w '%{http_code}' "http://127.0.0.1:$PX/v1/models" -H "Authorization: Bearer $long")
[ "$code" = 431 ] && grep -q 'Authorization' "$TMP/431.json" || fail "10 kB header: HTTP $code $(head -c 300 "$TMP/431.json")"
pass "a 10 kB Authorization header -> 431 naming the header"

# --- gen-2 gets no client key by default ---
ask() { # PORT KEY -> completion through the proxy
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v1/completions" -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json' -d '{"prompt":"The capital of France is","max_tokens":1}'
}
# gen-2's completion copies only: the proxy's own identity probes (GET /props, /v1/models)
# land in the same log at moments of their own, and counting them raced the copy
g2posts() { grep '"method": "POST"' "$TMP/g2.jsonl" 2>/dev/null || true; }
g1posts() { grep '"method": "POST"' "$TMP/g1.jsonl" 2>/dev/null || true; }
wait_g2() { # N: until gen-2 has N completion copies logged (an event: 30 s only bounds a lost copy)
  for i in $(seq 300); do [ "$(g2posts | grep -c .)" -ge "$1" ] && return 0; sleep 0.1; done
  return 1
}
g2auth() { g2posts | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["headers"].get("authorization","NONE"))'; }
[ "$(ask "$PX" client-secret)" = 200 ] || fail "completion through the proxy failed"
wait_g2 1 || fail "gen-2 never got the copy"
g1posts | tail -1 | grep -q '"authorization": "Bearer client-secret"' || fail "gen-1 did not get the client's key"
[ "$(g2auth)" = NONE ] || fail "gen-2 received the client's Authorization: $(g2auth)"
pass "gen-2 receives no client Authorization by default (gen-1 does)"

kill "$SH_PID"; wait "$SH_PID" 2>/dev/null || true
PX2=$(free_port)
start_shadow "$PX2" "$TMP/l2.jsonl" --forward-auth
[ "$(ask "$PX2" client-secret)" = 200 ] && wait_g2 2 || fail "--forward-auth run failed"
[ "$(g2auth)" = "Bearer client-secret" ] || fail "--forward-auth: gen-2 got $(g2auth)"
kill "$SH_PID"; wait "$SH_PID" 2>/dev/null || true
PX3=$(free_port)
TRIT_CANDIDATE_API_KEY=cand-key start_shadow "$PX3" "$TMP/l3.jsonl"
[ "$(ask "$PX3" client-secret)" = 200 ] && wait_g2 3 || fail "candidate-key run failed"
[ "$(g2auth)" = "Bearer cand-key" ] || fail "TRIT_CANDIDATE_API_KEY: gen-2 got $(g2auth)"
kill "$SH_PID"; wait "$SH_PID" 2>/dev/null || true
pass "--forward-auth forwards the client's key; \$TRIT_CANDIDATE_API_KEY replaces it"

# --- the proxy's own key: file must be private; 401 without the key ---
printf 'proxy-key\n' >"$TMP/key"
chmod 644 "$TMP/key"
rc=0; "$TRIT" shadow --listen 127.0.0.1:0 --primary "http://127.0.0.1:$G1" --candidate "http://127.0.0.1:$G2" \
  --api-key-file "$TMP/key" --ledger "$TMP/lk.jsonl" >"$TMP/k.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "chmod 600" "$TMP/k.log" || fail "world-readable key file: rc=$rc $(cat "$TMP/k.log")"
chmod 600 "$TMP/key"
PX4=$(free_port)
start_shadow "$PX4" "$TMP/l4.jsonl" --api-key-file "$TMP/key"
c1=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PX4/v1/models")
c2=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' "http://127.0.0.1:$PX4/v1/models")
c3=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer proxy-key' "http://127.0.0.1:$PX4/v1/models")
[ "$c1$c2$c3" = 401401200 ] || fail "proxy key: got $c1 $c2 $c3, want 401 401 200"
# /health stays open for GET (load balancers), not for other methods
h1=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PX4/health")
h2=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PX4/health" -d '{}')
h3=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$PX4/v1/health")
[ "$h1$h2$h3" = 200401401 ] || fail "/health exemption: GET $h1, POST $h2, DELETE $h3 (want 200 401 401)"
kill "$SH_PID"; wait "$SH_PID" 2>/dev/null || true
pass "--api-key-file: refused when world-readable; 401 without / with a wrong key, 200 with it; /health open to GET only"

# --- open doors (http's one rule, as trit serve): a non-loopback listener needs a key; an
#     empty TRIT_API_KEY is an error ---
rc=0; "$TRIT" shadow --listen 0.0.0.0:0 --primary "http://127.0.0.1:$G1" --candidate "http://127.0.0.1:$G2" \
  --ledger "$TMP/ld.jsonl" >"$TMP/door.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "non-loopback --host needs an API key" "$TMP/door.log" ||
  fail "shadow on 0.0.0.0 without a key: rc=$rc $(cat "$TMP/door.log")"
rc=0; TRIT_API_KEY= "$TRIT" shadow --listen 127.0.0.1:0 --primary "http://127.0.0.1:$G1" \
  --candidate "http://127.0.0.1:$G2" --ledger "$TMP/ld.jsonl" >"$TMP/door.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "TRIT_API_KEY is set but empty" "$TMP/door.log" ||
  fail "shadow with TRIT_API_KEY= : rc=$rc $(cat "$TMP/door.log")"
pass "open doors: shadow on 0.0.0.0 without a key and with TRIT_API_KEY= refuse to start (exit 2)"

# --- Host: HTTP/1.1 without one, or two of them -> 400 ---
PXH=$(free_port)
start_shadow "$PXH" "$TMP/lh.jsonl" --quiet
codes=$(python3 - "$PXH" <<'PY'
import socket, sys
def ask(raw):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(raw)
    line = s.makefile("rb").readline().split()
    s.close()
    return line[1].decode() if len(line) > 1 else "none"
print(ask(b"GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n"),
      ask(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"),
      ask(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
PY
)
[ "$codes" = "400 400 200" ] || fail "Host checks on shadow: $codes (want 400 400 200)"
kill "$SH_PID"; wait "$SH_PID" 2>/dev/null || true
pass "shadow: HTTP/1.1 without Host and with two Host headers get 400"

# --- bounded shutdown: hung gen-2 (a queued copy) and a hung gen-1 request ---
GH=$(free_port)
start_up "$GH" "$TMP/gh.jsonl" hang
PX5=$(free_port)
G2_SAVE=$G2; G2=$GH
start_shadow "$PX5" "$TMP/l5.jsonl" --grace 1 --quiet
G2=$G2_SAVE
for i in 1 2 3; do ask "$PX5" k >/dev/null; done
curl -s -m 120 -o /dev/null "http://127.0.0.1:$PX5/slow" &
slow=$!
# the signal comes once both upstreams hold a request (the events: their logs), never after a
# guessed sleep: the hung gen-2 has a copy, gen-1 is inside its 60 s /slow
for i in $(seq 600); do
  grep -q '"target": "/slow"' "$TMP/g1.jsonl" 2>/dev/null && [ -s "$TMP/gh.jsonl" ] && break
  sleep 0.05
done
grep -q '"target": "/slow"' "$TMP/g1.jsonl" && [ -s "$TMP/gh.jsonl" ] || fail "the hung requests never reached the upstreams"
t0=$(date +%s.%N)
kill -TERM "$SH_PID"
rc=0; wait "$SH_PID" || rc=$?
dt=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
wait "$slow" 2>/dev/null || true
[ "$rc" = 0 ] || fail "shadow exited $rc on SIGTERM with hung upstreams"
# the bound tells a bounded shutdown from one that waits for an upstream (60 s for /slow, an
# hour for the hung copy); 20 s leaves a loaded machine room and still fails such a wait
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 20 else 1)" "$dt" || fail "shutdown took ${dt}s with --grace 1"
pass "SIGTERM with a hung gen-2 and a hung gen-1 request: exit 0 in ${dt}s (--grace 1)"

# --- kill -9 at random moments: no lost or partial record survives reopening ---
L="$TMP/k9.jsonl"
prev=0
for round in 1 2 3 4; do
  PXK=$(free_port)
  start_shadow "$PXK" "$L" --quiet
  python3 - "$PXK" <<'PY' &
import json, sys, threading, urllib.request
def go(k):
    for i in range(40):
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/completions",
                data=json.dumps({"prompt": f"p{k}-{i}", "max_tokens": 1}).encode(),
                headers={"Content-Type": "application/json"}), timeout=5).read()
        except Exception: return
ts = [threading.Thread(target=go, args=(k,)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
  load=$!
  sleep "0.$((RANDOM % 9 + 1))"
  kill -9 "$SH_PID"; wait "$SH_PID" 2>/dev/null || true
  wait "$load" 2>/dev/null || true
  n=$(python3 - "$L" "$prev" <<'PY'
import json, sys
good, rounds = 0, []
for line in open(sys.argv[1], "rb"):
    if not line.strip(): continue
    try: r = json.loads(line)
    except ValueError: continue  # an incomplete last line: skipped by every reader
    good += 1
    if r["type"] == "round": rounds.append(r["round"])  # identity records carry no round
assert len(rounds) == len(set(rounds)), "a round number was reused"
assert good >= int(sys.argv[2]), f"records lost: {good} < {sys.argv[2]}"
print(good)
PY
) || fail "ledger after kill -9 #$round"
  prev=$n
done
"$TRIT" burnin stats --ledger "$L" >"$TMP/k9stats.txt" 2>&1 || { cat "$TMP/k9stats.txt"; fail "stats cannot read the ledger after kill -9"; }
pass "4 x kill -9 under load: $prev records, none lost, rounds unique, ledger readable"

# requests forwarded to gen-1 (the proxy's own identity probes, sent as trit/VERSION at moments
# of their own, are not counted: counting them raced the checks below)
g1fwd() { grep -v '"user-agent": "trit/' "$TMP/g1.jsonl" | grep -c . || true; }

# --- browser pages are refused (Origin on every browser POST, rebound pages included) ---
PX6=$(free_port)
start_shadow "$PX6" "$TMP/l6.jsonl" --quiet
n0=$(g1fwd)
code=$(curl -s -o "$TMP/o.json" -w '%{http_code}' "http://127.0.0.1:$PX6/v1/completions" -H 'Origin: http://evil.example' \
  -H 'Content-Type: text/plain' -d '{"prompt":"x"}')
[ "$code" = 403 ] && grep -q '"error"' "$TMP/o.json" || fail "browser POST through the shadow: HTTP $code"
[ "$(g1fwd)" = "$n0" ] || fail "a browser request reached gen-1"
pass "requests with an Origin header get 403 and reach no upstream"

# --- DNS rebinding: listening on loopback, a Host naming another server gets 403, even on a GET
# without Origin (a rebound page's fetch of /v1/models); --host-allow admits a chosen name ---
n0=$(g1fwd)
code=$(curl -s -o "$TMP/o.json" -w '%{http_code}' "http://127.0.0.1:$PX6/v1/models" -H 'Host: evil.example')
[ "$code" = 403 ] && grep -q '"error"' "$TMP/o.json" || fail "rebound Host through the shadow: HTTP $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PX6/v1/models" -H "Host: localhost:$PX6")
[ "$code" = 200 ] || fail "Host localhost:$PX6 through the shadow: HTTP $code, want 200"
[ "$(g1fwd)" = "$((n0 + 1))" ] || fail "the rebound request reached gen-1"
PX7=$(free_port)
start_shadow "$PX7" "$TMP/l7.jsonl" --quiet --host-allow llm.lan
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PX7/v1/models" -H "Host: llm.lan:$PX7")
[ "$code" = 200 ] || fail "--host-allow llm.lan: HTTP $code, want 200"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PX7/v1/models" -H 'Host: llm.lan.evil')
[ "$code" = 403 ] || fail "--host-allow llm.lan admitted llm.lan.evil: HTTP $code"
pass "Host check: a rebound name gets 403 and reaches no upstream; --host-allow admits its names"
