#!/usr/bin/env bash
# 64_server_replies — every reply bounded, every failure an honest status (issue 23 items 1, 2):
#  - fault injection on every route: `trit serve --fault json-alloc=N` fails every Nth JSON
#    allocation; each route then answers either exactly what a fault-free server answers, or
#    an OpenAI error (500/503 {"error":{...}}) — never a 200 with partial data. A stream either
#    ends with [DONE] and the fault-free text, or with an error event and no [DONE];
#  - a 1 MiB /tokenize with with_pieces: answered whole, and the server's peak RSS (VmHWM)
#    grows by less than the bound docs/SECURITY.md states;
#  - a /tokenize reply over the 32 MiB reply limit is refused with 413 naming the limit, and
#    logprobs over the entry limit with 413 naming it; the server stays up.
source "$(dirname "$0")/lib.sh"
MODEL="$ROOT/models/kjv-bitnet-tq2_0.gguf"
[ -s "$MODEL" ] || { echo "no demo model at $MODEL"; exit 77; }

P0=$(free_port)
start_trit_serve "$MODEL" "$P0" --max-body 8388608
U0="http://127.0.0.1:$P0"

# The requests every route gets: NAME METHOD PATH BODY
cat >"$TMP/routes" <<'EOF'
health GET /health -
models GET /v1/models -
props GET /props -
metrics GET /metrics -
cmpl POST /v1/completions {"prompt":"In the beginning","max_tokens":8,"temperature":0}
cmpl_lp POST /v1/completions {"prompt":"In the beginning God","max_tokens":6,"temperature":0,"echo":true,"logprobs":3}
chat POST /v1/chat/completions {"messages":[{"role":"user","content":"Who made the light?"}],"max_tokens":8,"temperature":0,"logprobs":true,"top_logprobs":2}
cmpl_sse POST /v1/completions {"prompt":"And God said","max_tokens":8,"temperature":0,"stream":true,"logprobs":2}
chat_sse POST /v1/chat/completions {"messages":[{"role":"user","content":"Let there be"}],"max_tokens":8,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}
tok POST /tokenize {"content":"In the beginning God created the heaven and the earth.\n\u00e9\u4e16","with_pieces":true}
detok POST /detokenize {"tokens":[1131,258,1782,1240,10,34,71,328]}
EOF

# ask URL NAME METHOD PATH BODY -> $TMP/NAME.<tag>.{body,code}
ask() {
  local u="$1" out="$2" method="$3" path="$4" body="$5"
  if [ "$method" = GET ]; then
    curl -s -m 60 -o "$out.body" -w '%{http_code}' "$u$path" >"$out.code"
  else
    curl -s -m 60 -o "$out.body" -w '%{http_code}' "$u$path" -d "$body" >"$out.code"
  fi
}
while read -r name method path body; do
  ask "$U0" "$TMP/$name.ref" "$method" "$path" "$body"
  [ "$(cat "$TMP/$name.ref.code")" = 200 ] || fail "fault-free $name: HTTP $(cat "$TMP/$name.ref.code")"
done <"$TMP/routes"

# judge NAME TAG -> "ok" (same as the fault-free reply), "err" (an OpenAI error), or a failure
cat >"$TMP/judge.py" <<'EOF'
import json, sys
name, ref_p, got_p, code = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ref, got = open(ref_p, "rb").read(), open(got_p, "rb").read()
def die(msg):  # on stdout: the script puts it in its failure line
    print(msg)
    sys.exit(1)
def is_error(doc):
    e = doc.get("error") if isinstance(doc, dict) else None
    return isinstance(e, dict) and isinstance(e.get("message"), str) and "type" in e
def shape(v):  # keys, recursively (values such as ids, times and hashes vary per process)
    if isinstance(v, dict): return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list): return [shape(x) for x in v[:1]]
    return type(v).__name__
def stable(doc):  # a completion's content: everything but its id and creation time
    return {k: v for k, v in doc.items() if k not in ("id", "created")}
if name == "metrics":
    ok = code == 200 and got.startswith(b"#") or code in (500, 503)
    print("ok" if code == 200 else "err") if ok else die(f"metrics: HTTP {code} {got[:200]!r}")
    sys.exit(0)
if name.endswith("_sse") and code != 200:
    if code not in (500, 503) or not is_error(json.loads(got)):
        die(f"{name}: a stream answered HTTP {code}: {got[:300]!r}")
    print("err"); sys.exit(0)
if name.endswith("_sse"):
    events = [l[6:] for l in got.decode().split("\n") if l.startswith("data: ")]
    refev = [l[6:] for l in ref.decode().split("\n") if l.startswith("data: ")]
    if events and events[-1] == "[DONE]":
        a = [stable(json.loads(e)) for e in events[:-1]]
        b = [stable(json.loads(e)) for e in refev[:-1]]
        if a != b: die(f"{name}: a stream that ended with [DONE] differs from the fault-free one")
        print("ok"); sys.exit(0)
    if not events or not is_error(json.loads(events[-1])):
        die(f"{name}: a stream ended without [DONE] and without an error event: {got[-300:]!r}")
    print("err"); sys.exit(0)
try:
    doc = json.loads(got)
except ValueError:
    die(f"{name}: HTTP {code} with a body that is not JSON: {got[:200]!r}")
if code in (500, 503):
    if not is_error(doc): die(f"{name}: {code} without an OpenAI error body: {got[:300]!r}")
    print("err"); sys.exit(0)
if code != 200: die(f"{name}: HTTP {code}: {got[:300]!r}")
r = json.loads(ref)
if name in ("models", "props"):
    same = shape(doc) == shape(r)
else:
    same = stable(doc) == stable(r) if "id" in r else doc == r
if not same: die(f"{name}: 200 with a reply that differs from the fault-free one: {got[:400]!r}")
print("ok")
EOF

declare -A seen
for every in 2 3 5 11 29 97; do
  P=$(free_port)
  # started by hand: /health itself may fail under the fault, so wait for any HTTP answer
  "$TRIT" serve "$MODEL" --host 127.0.0.1 --port "$P" --threads 1 --fault "json-alloc=$every" \
    >"$TMP/trit-serve-$P.log" 2>&1 &
  _pids+=($!)
  for ((w = 0; w < 600; w++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/health")" != 000 ] && break
    sleep 0.1
  done
  grep -q "WARNING: --fault is on" "$TMP/trit-serve-$P.log" || fail "--fault printed no warning"
  while read -r name method path body; do
    for i in 1 2; do
      ask "http://127.0.0.1:$P" "$TMP/$name.f$every.$i" "$method" "$path" "$body"
      v=$(python3 "$TMP/judge.py" "$name" "$TMP/$name.ref.body" "$TMP/$name.f$every.$i.body" \
        "$(cat "$TMP/$name.f$every.$i.code")") || fail "json-alloc=$every: $v"
      seen[$name.$v]=1
    done
  done <"$TMP/routes"
  curl -s -o /dev/null "http://127.0.0.1:$P/health" || fail "json-alloc=$every: server gone"
  kill "${_pids[-1]}" && wait "${_pids[-1]}" 2>/dev/null || true
done
# every route must have been seen failing honestly at least once (the faults reached it)
# (/metrics is text from base's buffers, which abort on out-of-memory: no JSON to fail)
for name in $(cut -d' ' -f1 "$TMP/routes" | grep -v '^metrics$'); do
  [ -n "${seen[$name.err]:-}" ] || fail "route $name never met an injected fault (raise the rates)"
done
pass "json-alloc faults on ${#seen[@]} route/outcome pairs: every reply whole or an OpenAI 500/503, streams end in [DONE] or an error event"

# --- the 1 MiB with_pieces /tokenize: answered whole, peak RSS bounded ---
pid=${_pids[0]}
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
python3 - "$ROOT/models/kjv-heldout.txt" "$TMP/big.json" 1048576 <<'EOF'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
n = int(sys.argv[3])
content = (text * (n // len(text) + 1))[:n]
json.dump({"content": content, "with_pieces": True}, open(sys.argv[2], "w"))
EOF
curl -sf -o /dev/null "$U0/tokenize" -d '{"content":"warm up","with_pieces":true}' || fail "warm-up"
h0=$(hwm_kb "$pid")
t0=$(date +%s.%N)
code=$(curl -s -o "$TMP/big.out" -w '%{http_code}' "$U0/tokenize" --data-binary @"$TMP/big.json")
t1=$(date +%s.%N)
h1=$(hwm_kb "$pid")
[ "$code" = 200 ] || fail "1 MiB with_pieces /tokenize: HTTP $code $(head -c 300 "$TMP/big.out")"
n_tok=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['tokens']))" "$TMP/big.out")
size=$(stat -c %s "$TMP/big.out")
grow=$((h1 - h0))
echo "  1 MiB with_pieces: $n_tok tokens, reply $size bytes, VmHWM ${h0} kB -> ${h1} kB (+${grow} kB), $(python3 -c "print(round($t1-$t0,2))") s on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
[ "$grow" -lt 131072 ] || fail "1 MiB with_pieces /tokenize grew the peak RSS by $grow kB (bound 128 MiB, docs/SECURITY.md)"
pass "1 MiB with_pieces /tokenize: $n_tok tokens in $size bytes, peak RSS +$((grow / 1024)) MiB (bound 128 MiB)"

# --- over the limits: 413 naming the limit, server alive ---
python3 - "$ROOT/models/kjv-heldout.txt" "$TMP/huge.json" 6291456 <<'EOF'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
n = int(sys.argv[3])
content = (text * (n // len(text) + 1))[:n]
json.dump({"content": content, "with_pieces": True}, open(sys.argv[2], "w"))
EOF
code=$(curl -s -o "$TMP/huge.out" -w '%{http_code}' "$U0/tokenize" --data-binary @"$TMP/huge.json")
[ "$code" = 413 ] && grep -q '"reply_too_large"' "$TMP/huge.out" && grep -q '33554432 bytes' "$TMP/huge.out" ||
  fail "6 MiB with_pieces /tokenize: HTTP $code $(head -c 300 "$TMP/huge.out")"
# logprobs: entries over prompt + generation are bounded before any work (a 16k context leaves
# room for 16k tokens x 21 entries > 131072)
PL=$(free_port)
start_trit_serve "$(tiny_model llama f16)" "$PL" --ctx 16384 --slots 1
code=$(curl -s -o "$TMP/lp.out" -w '%{http_code}' "http://127.0.0.1:$PL/v1/completions" \
  -d '{"prompt":"In","logprobs":20}')
[ "$code" = 413 ] && grep -q '"logprobs_too_large"' "$TMP/lp.out" && grep -q 'limit 131072' "$TMP/lp.out" ||
  fail "logprobs over the bound: HTTP $code $(head -c 300 "$TMP/lp.out")"
code=$(curl -s -o "$TMP/lp.out" -w '%{http_code}' "http://127.0.0.1:$PL/v1/completions" \
  -d '{"prompt":"In","logprobs":20,"max_tokens":4}')
[ "$code" = 200 ] || fail "logprobs within the bound refused: HTTP $code $(head -c 300 "$TMP/lp.out")"
curl -sf -o /dev/null "$U0/health" || fail "server gone after the refusals"
pass "413 naming the limit: a 6 MiB with_pieces /tokenize (33554432 reply bytes), logprobs 20 over a 16k context (131072 entries); server alive"
