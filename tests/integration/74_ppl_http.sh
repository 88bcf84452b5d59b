#!/usr/bin/env bash
# 74_ppl_http — perplexity over HTTP on the demo model, a ~1024-token text (2 chunks x 512):
#  1. llama-server (no echo: one logit_bias-forced request per position) vs trit serve (echo):
#     gen-1's PPL equals the in-process llama: figure and gen-2's the in-process trit: figure
#     to 1e-4 relative; the file records text_path, text_sha256, scored_tokens, both
#     identities and the top-N KLD label;
#  2. llama-server with its prompt cache: each request prefills ~1 token; with flash attention
#     off the PPL equals llama:?fa=off to 1e-4; with flash attention on (its default) the
#     1-row decode takes ggml-cpu's F16-accumulating attention path, so the figure is only
#     close (< 1e-3), and ?cache=off gives back the batch figure (1e-4);
#  3. servers that misbehave (lp_stub.py): garbage, post-bias probabilities, short or wrong
#     logprobs mid-run, a hang past --timeout, another vocabulary: setup failure (exit 3)
#     naming the side and the request; the same server on both sides is said.
source "$(dirname "$0")/lib.sh"

M="$ROOT/models/kjv-bitnet-tq2_0.gguf"
[ -r "$M" ] || fail "demo model $M missing"
[ -x "$(ref_bin llama-server)" ] || fail "reference llama-server missing at $(ref_bin llama-server)"
TXT="$TMP/kjv-1k.txt"
head -c 3900 "$ROOT/models/kjv-heldout.txt" >"$TXT"
jq_() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
within() { # a b rel -> exit 0 when |a-b| <= rel*|b|
  python3 -c "import sys; a,b,r=map(float,sys.argv[1:]); sys.exit(0 if abs(a-b)<=r*abs(b) else 1)" "$@"
}
rel() { python3 -c "import sys; a,b=map(float,sys.argv[1:]); print('%.2e' % (abs(a-b)/abs(b)))" "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$@"; }
Q=(--threads 1 --quiet)

# in-process figures (the reference library and trit)
"$TRIT" ppl --backend "llama:$M" "${Q[@]}" --text "$TXT" --json -o "$TMP/llama.json" >/dev/null ||
  fail "in-process llama: ppl failed"
"$TRIT" ppl --backend "llama:$M?fa=off" "${Q[@]}" --text "$TXT" --json -o "$TMP/llama-fa-off.json" >/dev/null ||
  fail "in-process llama:?fa=off ppl failed"
"$TRIT" ppl --backend "trit:$M" "${Q[@]}" --text "$TXT" --json -o "$TMP/trit.json" >/dev/null ||
  fail "in-process trit: ppl failed"
lp=$(jq_ "$TMP/llama.json" 'd["ppl"]')
lpo=$(jq_ "$TMP/llama-fa-off.json" 'd["ppl"]')
tp=$(jq_ "$TMP/trit.json" 'd["ppl"]')
[ "$(jq_ "$TMP/llama.json" 'd["count"]')" = 510 ] || fail "expected 2 chunks x 255 scored positions"

# 1. gen-1 llama-server (lib.sh: --no-cache-prompt) vs gen-2 trit serve, over HTTP
L1=$(free_port)
start_llama_server "$M" "$L1"
T=$(free_port)
start_trit_serve "$M" "$T"
t0=$(now)
"$TRIT" ppl --gen1 "http://127.0.0.1:$L1" --gen2 "http:http://127.0.0.1:$T" --text "$TXT" \
  -o "$TMP/p.json" >"$TMP/p.txt" 2>"$TMP/p.err" || { cat "$TMP/p.err"; fail "ppl over HTTP failed"; }
t1=$(now)
cat "$TMP/p.txt" | head -3
g1=$(jq_ "$TMP/p.json" 'd["gen1"]["ppl"]')
g2=$(jq_ "$TMP/p.json" 'd["gen2"]["ppl"]')
echo "gen-1 over HTTP $g1 vs llama: $lp (rel $(rel "$g1" "$lp")); gen-2 over HTTP $g2 vs trit: $tp" \
  "(rel $(rel "$g2" "$tp")); $(secs "$t0" "$t1") s for both sides (llama-server without prompt cache)"
within "$g1" "$lp" 1e-4 || fail "gen-1 PPL over HTTP $g1 is not the in-process llama: $lp to 1e-4"
within "$g2" "$tp" 1e-4 || fail "gen-2 PPL over HTTP $g2 is not the in-process trit: $tp to 1e-4"
[ "$(jq_ "$TMP/p.json" 'd["gen1"]["score_mode"]')" = forced ] || fail "llama-server not scored by forced requests"
[ "$(jq_ "$TMP/p.json" 'd["gen2"]["score_mode"]')" = echo ] || fail "trit serve not scored by echo"
grep -q "chunk 2/2: running PPL" "$TMP/p.err" || fail "no progress on stderr: $(cat "$TMP/p.err")"
pass "PPL over HTTP equals the in-process figures (llama-server forced, trit serve echo)"

sha=$(sha256sum "$TXT" | cut -d' ' -f1)
[ "$(jq_ "$TMP/p.json" 'd["text_sha256"]')" = "$sha" ] || fail "text_sha256 is not the file's sha256"
[ "$(jq_ "$TMP/p.json" 'd["text_path"]')" = "$TXT" ] || fail "text_path missing"
[ "$(jq_ "$TMP/p.json" 'type(d["scored_tokens"]).__name__ + str(d["scored_tokens"])')" = int510 ] ||
  fail "scored_tokens is not the integer 510"
[ "$(jq_ "$TMP/p.json" 'd["gen1_identity"]["engine"] + "/" + d["gen2_identity"]["engine"]')" = llama.cpp/trit ] ||
  fail "identities: $(jq_ "$TMP/p.json" 'd["gen1_identity"], d["gen2_identity"]')"
[ "$(jq_ "$TMP/p.json" 'd["gen2_identity"]["model_sha256"]')" = "$(sha256sum "$M" | cut -d' ' -f1)" ] ||
  fail "gen-2 identity lacks the model's sha256"
[ "$(jq_ "$TMP/p.json" 'd["kld_topn"], d["kld"]["kld_topn"]')" = "(20, 20)" ] || fail "KLD not labelled top-20"
jq_ "$TMP/p.json" '"top-N" in d["kld_support"] and d["kld"]["mean"] < 0.01' | grep -q True ||
  fail "top-N KLD missing or large: $(jq_ "$TMP/p.json" 'd["kld"]')"
grep -q "over the top-20 support" "$TMP/p.txt" || fail "the printed KLD is not labelled top-N"
pass "ppl file: text_path, text_sha256, scored_tokens, identities, kld_topn"

# 2. llama-server with its prompt cache (lib.sh starts it without; this one keeps its default)
start_cached() { # PORT [extra args]
  local port="$1"; shift
  "$(ref_bin llama-server)" -m "$M" --host 127.0.0.1 --port "$port" -np 1 -t 1 -c 2048 --no-webui "$@" \
    >"$TMP/llama-cached-$port.log" 2>&1 &
  _pids+=($!)
  wait_http "http://127.0.0.1:$port/health" 120 || fail "llama-server (cached) did not start"
}
L2=$(free_port)
start_cached "$L2"
t0=$(now)
"$TRIT" ppl --url "http://127.0.0.1:$L2" --text "$TXT" --quiet --json -o "$TMP/c.json" >/dev/null ||
  fail "ppl over HTTP with the prompt cache failed"
t1=$(now)
c=$(jq_ "$TMP/c.json" 'd["ppl"]')
one=$(grep -c 'prompt eval time = .* /      *1 tokens' "$TMP/llama-cached-$L2.log" || true)
echo "prompt cache: $(secs "$t0" "$t1") s, $one of 510+ requests prefilled 1 token; PPL $c vs llama: $lp (rel $(rel "$c" "$lp"))"
[ "$one" -ge 500 ] || fail "the prompt cache was not reused ($one one-token prefills)"
within "$c" "$lp" 1e-3 || fail "cached PPL $c far from $lp"
"$TRIT" ppl --url "http://127.0.0.1:$L2?cache=off" --text "$TXT" --quiet --json -o "$TMP/co.json" >/dev/null ||
  fail "ppl over HTTP with cache=off failed"
co=$(jq_ "$TMP/co.json" 'd["ppl"]')
within "$co" "$lp" 1e-4 || fail "cache=off PPL $co is not the in-process $lp to 1e-4"
L3=$(free_port)
start_cached "$L3" -fa off
"$TRIT" ppl --url "http://127.0.0.1:$L3" --text "$TXT" --quiet --json -o "$TMP/f.json" >/dev/null ||
  fail "ppl over HTTP (flash attention off) failed"
f=$(jq_ "$TMP/f.json" 'd["ppl"]')
echo "flash attention off, prompt cache: $f vs llama:?fa=off $lpo (rel $(rel "$f" "$lpo")); cache=off: $co (rel $(rel "$co" "$lp"))"
within "$f" "$lpo" 1e-4 || fail "fa-off cached PPL $f is not llama:?fa=off $lpo to 1e-4"
pass "prompt cache reused (1-token prefills); fa off: equal to 1e-4; cache=off: equal to 1e-4"

# 3. misbehaving servers: setup failure (exit 3) naming the side and the request
stub() { # MODE -> $SPORT; started here (not in a subshell) so the exit trap stops it
  SPORT=$(free_port)
  python3 "$ROOT/tests/integration/lp_stub.py" "$SPORT" "$1" >"$TMP/stub-$1.log" 2>&1 &
  _pids+=($!)
  for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$SPORT/v1/models" && break; sleep 0.1; done
}
expect3() { # NAME GREP-PATTERN trit-ppl-args...
  local name="$1" pat="$2" rc=0; shift 2
  "$TRIT" ppl "$@" --quiet >/dev/null 2>"$TMP/e-$name" || rc=$?
  [ "$rc" = 3 ] || fail "$name: exit $rc, not 3: $(cat "$TMP/e-$name")"
  grep -qE "$pat" "$TMP/e-$name" || fail "$name: message does not match '$pat': $(cat "$TMP/e-$name")"
  echo "  $name: $(head -c 300 "$TMP/e-$name")"
}
stub garbage; S=$SPORT
expect3 garbage "setup failure: gen-2: http:http://127.0.0.1:$S: .*not JSON" \
  --gen1 "http://127.0.0.1:$L1" --gen2 "http://127.0.0.1:$S" --text "$TXT"
stub postbias; S=$SPORT
expect3 postbias "setup failure: gen-1: .*127.0.0.1:$S: scoring probe: .*after logit_bias" \
  --gen1 "http://127.0.0.1:$S" --gen2 "http://127.0.0.1:$T" --text "$TXT"
stub short; S=$SPORT
expect3 short "setup failure: source http://127.0.0.1:$S: chunk 2: .*request for position 17 .*3 top log-probabilities, 20 requested" \
  --url "http://127.0.0.1:$S" --text "$TXT" --ctx 32 --chunks 3
stub wrongid; S=$SPORT
expect3 wrongid "request for position 17 .*reply is about token" --url "http://127.0.0.1:$S" --text "$TXT" --ctx 32 --chunks 3
stub hang; S=$SPORT
expect3 hang "request for position 17 .*no reply within 2.0 s" --url "http://127.0.0.1:$S" --text "$TXT" --ctx 32 \
  --chunks 3 --timeout 2
stub vocab; S=$SPORT
expect3 vocab "gen-1 .* 2048 tokens, gen-2 .* 999: different vocabularies" \
  --gen1 "http://127.0.0.1:$L1" --gen2 "http://127.0.0.1:$S" --text "$TXT"
stub good; S=$SPORT
"$TRIT" ppl --url "http://127.0.0.1:$S" --text "$TXT" --ctx 32 --chunks 3 --quiet >/dev/null ||
  fail "the well-behaved stub should be scored"
pass "misbehaving servers: setup failure naming the side and the request"

# the same server on both sides is said (the gate refuses such a file)
"$TRIT" ppl --gen1 "http://127.0.0.1:$T" --gen2 "http://127.0.0.1:$T/" --text "$TXT" --ctx 32 --chunks 2 \
  --quiet >/dev/null 2>"$TMP/same.err" || fail "same-server run failed: $(cat "$TMP/same.err")"
grep -q "are the same server" "$TMP/same.err" || fail "no same-server warning: $(cat "$TMP/same.err")"
pass "the same server on both sides is said"
