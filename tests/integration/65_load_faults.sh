#!/usr/bin/env bash
# 65_load_faults — 16 clients x LOAD_N (default 4; the issue's full run is LOAD_N=500) mixed
# requests against `trit serve` (API key from $TRIT_API_KEY) and through `trit shadow` in front
# of it: streaming, non-streaming, cancelled mid-stream, malformed JSON, oversized (2 MiB),
# wrong key. Every answer must be right for its kind: 200 with a completion (a stream ending in
# [DONE]), or the refusal the kind calls for (400 / 413 / 401), or load shedding (429 / 503
# with Retry-After) — each refusal an OpenAI error object {"error":{"message",...}}. Afterwards
# both processes are alive and answer, and the shadow stops with exit 0.
source "$(dirname "$0")/lib.sh"

N="${LOAD_N:-4}"
M=$(tiny_model bitnet tq2_0)
P=$(free_port); PX=$(free_port)
TRIT_API_KEY=load-key start_trit_serve "$M" "$P" --slots 2 --queue 64 --max-body 65536
srv_pid=${_pids[-1]}
printf 'load-key\n' >"$TMP/cand.key"
chmod 600 "$TMP/cand.key"
${SHADOW_WRAP:-} "$TRIT" shadow --listen "127.0.0.1:$PX" --primary "http://127.0.0.1:$P" --candidate "http://127.0.0.1:$P" \
  --candidate-key-file "$TMP/cand.key" --ledger "$TMP/l.jsonl" --quiet --grace 2 >"$TMP/shadow.log" 2>&1 &
sh_pid=$!
_pids+=($sh_pid)
wait_http "http://127.0.0.1:$PX/health" 60 || { cat "$TMP/shadow.log"; fail "shadow did not start"; }

load() { # PORT LABEL
  python3 - "$1" "$2" "$N" <<'PY'
import collections, json, random, socket, sys, threading
port, label, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
KEY = "load-key"
big = json.dumps({"prompt": "x" * (2 << 20), "max_tokens": 1}).encode()
def req(body, key=KEY, stream=False, cancel=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    hdr = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    try:
        s.sendall(hdr.encode() + body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # an early 413 may close before the whole body is sent; read what came back
    data = b""
    while True:
        try:
            x = s.recv(65536)
        except ConnectionResetError:
            break
        if not x: break
        data += x
        if cancel and b"data: " in data:
            s.close(); return "cancelled", None
    s.close()
    if not data.startswith(b"HTTP/1.1 "): return "no-reply", data[:200]
    head, _, payload = data.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():  # de-chunk
        out, rest = b"", payload
        while rest:
            ln, _, rest = rest.partition(b"\r\n")
            k = int(ln.split(b";")[0] or b"0", 16)
            if k == 0: break
            out, rest = out + rest[:k], rest[k + 2:]
        payload = out
    return int(head.split(b" ")[1]), (head, payload)
def is_error(head, payload):
    try: return isinstance(json.loads(payload)["error"]["message"], str)
    except Exception: return False
res = collections.Counter(); bad = []
def client(cid):
    rnd = random.Random(cid)
    for i in range(n):
        kind = ["plain", "stream", "cancel", "malformed", "oversized", "wrongkey"][(cid + i) % 6]
        body = json.dumps({"prompt": f"client {cid} request {i}", "max_tokens": 4,
                           "temperature": 0, "stream": kind in ("stream", "cancel")}).encode()
        if kind == "malformed": body = rnd.choice([b'{"prompt": "x",', b'[1,2', b'\xff\xfe', b'{"prompt": 5}'])
        if kind == "oversized": body = big
        st, r = req(body, key="nope" if kind == "wrongkey" else KEY, stream=kind == "stream",
                    cancel=kind == "cancel")
        res[(kind, st)] += 1
        if kind == "cancel" and st == "cancelled": continue
        if st in (429, 503):
            if not is_error(*r) or b"retry-after" not in r[0].lower(): bad.append((kind, st, r))
            continue
        want = {"malformed": 400, "oversized": 413, "wrongkey": 401}.get(kind, 200)
        if st != want: bad.append((kind, st, r)); continue
        head, payload = r
        if want != 200:
            if not is_error(head, payload): bad.append((kind, "not an OpenAI error", payload[:200]))
        elif kind in ("stream", "cancel"):
            if not payload.rstrip().endswith(b"data: [DONE]"): bad.append((kind, "stream cut", payload[-200:]))
        else:
            try: assert json.loads(payload)["choices"][0]["text"] is not None
            except Exception: bad.append((kind, "no completion", payload[:200]))
ts = [threading.Thread(target=client, args=(c,)) for c in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"{label}: {sum(res.values())} requests:", ", ".join(f"{k}/{s} x{v}" for (k, s), v in sorted(res.items(), key=str)))
for b in bad[:5]: print("  wrong:", b)
sys.exit(1 if bad else 0)
PY
}

load "$P" "trit serve" || fail "wrong answers from trit serve"
kill -0 "$srv_pid" || fail "trit serve crashed"
pass "trit serve: 16 x $N mixed requests, every answer right for its kind"

load "$PX" "through trit shadow" || fail "wrong answers through trit shadow"
kill -0 "$sh_pid" || fail "trit shadow crashed"
kill -0 "$srv_pid" || fail "trit serve crashed (behind the shadow)"
curl -sf -o /dev/null "http://127.0.0.1:$P/health" || fail "trit serve stopped answering"
pass "trit shadow: 16 x $N mixed requests, every answer right for its kind"

kill -TERM "$sh_pid"
rc=0; wait "$sh_pid" || rc=$?
[ "$rc" = 0 ] || { tail -5 "$TMP/shadow.log"; fail "trit shadow exited $rc after the load"; }
python3 - "$TMP/l.jsonl" <<'PY' || fail "shadow ledger after the load"
import json, sys
recs = [r for r in (json.loads(l) for l in open(sys.argv[1])) if r["type"] == "round"]  # identity records carry no round
rounds = [r["round"] for r in recs]
assert len(rounds) == len(set(rounds)), "duplicate rounds"
print(f"shadow ledger: {len(recs)} records, buckets", sorted({r['bucket'] for r in recs}))
PY
pass "shadow stopped cleanly; its ledger parses with unique rounds"
