#!/usr/bin/env bash
# 67_echo_memory — echo + logprobs memory is bounded and released (issue 13): a 1500-token
# prompt with echo and logprobs (which used to keep prompt x vocabulary floats, ~770 MB on the
# 128k vocabulary, for the life of the process) grows the server's anonymous RSS by far less,
# a second one grows it no further, every prompt token gets its logprob entry, and a request
# whose prompt logprobs would exceed the bound is refused with an OpenAI 413 error while the
# server stays up.
source "$(dirname "$0")/lib.sh"
MODEL=$(tiny_model llama f16)
PORT=$(free_port)
start_trit_serve "$MODEL" "$PORT" --slots 2 --ctx 8192
pid=${_pids[-1]}
U="http://127.0.0.1:$PORT"
rss_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }

# a warm-up request (scratch buffers are sized on first use), then the baseline
curl -sf -o /dev/null "$U/v1/completions" -d '{"prompt":"warm up","max_tokens":2,"echo":true,"logprobs":2}' ||
  fail "warm-up request failed"
rss0=$(rss_kb "$pid")

# prompt_ids N -> a JSON list of N token ids
prompt_ids() { python3 -c "import sys; n=int(sys.argv[1]); print([1] + [(i * 7919) % 30000 + 100 for i in range(n - 1)])" "$1"; }
body=$(printf '{"prompt":%s,"max_tokens":4,"temperature":0,"echo":true,"logprobs":5}' "$(prompt_ids 1500)")
for i in 1 2; do
  curl -sf -o "$TMP/echo$i.json" "$U/v1/completions" -d "$body" || fail "echo request $i failed"
  eval "rss$i=\$(rss_kb $pid)"
done
n_lp=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); lp=d['choices'][0]['logprobs']; print(len(lp['tokens']), sum(1 for t in lp['top_logprobs'][1:1500] if t and len(t) >= 1))" "$TMP/echo1.json")
[ "$n_lp" = "1504 1499" ] || fail "echo logprobs: want 1504 tokens and 1499 prompt top_logprobs, got $n_lp"
cmp -s "$TMP/echo1.json" "$TMP/echo2.json" ||
  python3 -c "import json,sys; a,b=[json.load(open(f))['choices'] for f in sys.argv[1:]]; sys.exit(a != b)" "$TMP/echo1.json" "$TMP/echo2.json" ||
  fail "the same echo request answered differently"
g1=$((rss1 - rss0)); g2=$((rss2 - rss1))
echo "  anonymous RSS ${rss0} kB -> ${rss1} kB (1st, +${g1}) -> ${rss2} kB (2nd, +${g2}); unbounded would be ~770000 kB"
[ "$g1" -lt 153600 ] || fail "a 1500-token echo+logprobs request grew RSS by $g1 kB (bound 150 MB)"
[ "$g2" -lt 16384 ] || fail "a second identical request grew RSS by another $g2 kB: not released"
pass "1500-token echo+logprobs: RSS +$((g1 / 1024)) MB then +$((g2 / 1024)) MB; 1499 prompt logprobs"

# over the bound: 7000 prompt tokens x (1 + 20 alternatives) entries
body=$(printf '{"prompt":%s,"max_tokens":1,"echo":true,"logprobs":20}' "$(prompt_ids 7000)")
code=$(curl -s -o "$TMP/big.json" -w '%{http_code}' "$U/v1/completions" -d "$body")
[ "$code" = 413 ] || fail "oversized echo+logprobs: HTTP $code, want 413: $(head -c 300 "$TMP/big.json")"
grep -q '"prompt_logprobs_too_large"' "$TMP/big.json" || fail "413 body: $(cat "$TMP/big.json")"
curl -sf -o /dev/null "$U/health" || fail "server gone after the refusal"
kill -0 "$pid" || fail "server process gone"
pass "7000-token echo with 20 logprobs refused with 413 prompt_logprobs_too_large, server alive"
