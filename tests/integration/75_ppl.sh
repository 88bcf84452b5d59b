#!/usr/bin/env bash
# 75_ppl — trit ppl vs the reference llama-perplexity on a tiny model (ctx 128, 4 chunks):
#  1. in-process trit PPL within 0.5% of llama-perplexity's on the same text/ctx/chunks;
#  2. base-logits files are interchangeable both ways (same header and tokens; trit reads the
#     reference's file, the reference reads trit's), and the KLD trit vs reference is tiny;
#  3. --url against trit serve gives the in-process PPL; 4. compare mode writes the gate's file;
#  5. bad inputs (truncated base file, short text, bad flags) fail with clear errors.
source "$(dirname "$0")/lib.sh"

M=$(tiny_model llama f32)
PPL=$(ref_bin llama-perplexity)
[ -x "$PPL" ] || fail "reference llama-perplexity missing at $PPL"
TXT=/usr/share/common-licenses/GPL-3
[ -r "$TXT" ] || fail "$TXT missing"
C=(--ctx 128 --chunks 4 --threads 1 --quiet)
jq_() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
within() { # a b rel -> exit 0 when |a-b| <= rel*|b|
  python3 -c "import sys; a,b,r=map(float,sys.argv[1:]); sys.exit(0 if abs(a-b)<=r*abs(b) else 1)" "$@"
}

# 1. reference PPL (its own base file on the side) and trit's
"$PPL" -m "$M" -f "$TXT" -c 128 --chunks 4 -t 1 --kl-divergence-base "$TMP/ref.bin" >"$TMP/ref.log" 2>&1 ||
  { tail "$TMP/ref.log"; fail "llama-perplexity failed"; }
ref=$(sed -n 's/.*Final estimate: PPL = \([0-9.e+]*\) .*/\1/p' "$TMP/ref.log")
[ -n "$ref" ] || fail "no final estimate in llama-perplexity output"
"$TRIT" ppl --backend "trit:$M" "${C[@]}" --kl-divergence-base "$TMP/trit.bin" --json -o "$TMP/trit.json" >/dev/null ||
  fail "trit ppl --backend failed"
tp=$(jq_ "$TMP/trit.json" 'd["ppl"]')
echo "PPL: llama-perplexity $ref, trit in-process $tp"
within "$tp" "$ref" 0.005 || fail "trit PPL $tp not within 0.5% of llama-perplexity's $ref"
[ "$(jq_ "$TMP/trit.json" 'd["count"]')" = 252 ] || fail "expected 4 x 63 scored positions"
pass "in-process PPL within 0.5% of llama-perplexity"

# --reference parses the same figure
"$TRIT" ppl --reference "$M" "${C[@]}" --json -o "$TMP/refp.json" >/dev/null || fail "trit ppl --reference failed"
within "$(jq_ "$TMP/refp.json" 'd["ppl"]')" "$ref" 1e-6 || fail "--reference parsed a different PPL"
pass "--reference parses llama-perplexity's estimate"

# 2. base files: identical size, header and tokens; both directions read
[ "$(stat -c %s "$TMP/ref.bin")" = "$(stat -c %s "$TMP/trit.bin")" ] || fail "base files differ in size"
cmp -n $((20 + 4 * 128 * 4)) "$TMP/ref.bin" "$TMP/trit.bin" || fail "base file header/tokens differ"
"$TRIT" ppl --backend "trit:$M" --threads 1 --quiet --kl-divergence-base "$TMP/ref.bin" --kl-divergence --json \
  -o "$TMP/kld1.json" >/dev/null || fail "trit could not read llama-perplexity's base file"
k1=$(jq_ "$TMP/kld1.json" 'd["kld"]["mean"]')
top1=$(jq_ "$TMP/kld1.json" 'd["kld"]["same_top"]')
echo "KLD trit vs llama-perplexity base: mean $k1, same top $top1"
python3 -c "import sys; sys.exit(0 if abs($k1) < 1e-3 and $top1 >= 0.99 else 1)" || fail "KLD too large"
"$TRIT" ppl --reference "$M" --threads 1 --quiet --kl-divergence-base "$TMP/trit.bin" --kl-divergence --json \
  -o "$TMP/kld2.json" >/dev/null || fail "llama-perplexity could not read trit's base file"
k2=$(jq_ "$TMP/kld2.json" 'd["kld"]["mean"]')
echo "KLD llama-perplexity vs trit base: mean $k2"
python3 -c "import sys; sys.exit(0 if abs($k2) < 1e-3 else 1)" || fail "reverse KLD too large"
pass "base-logits files interchangeable both ways"

# 3. --url against trit serve
P=$(free_port)
start_trit_serve "$M" "$P"
"$TRIT" ppl --url "http://127.0.0.1:$P" "${C[@]}" --json -o "$TMP/url.json" >/dev/null || fail "trit ppl --url failed"
up=$(jq_ "$TMP/url.json" 'd["ppl"]')
echo "PPL over HTTP: $up"
within "$up" "$tp" 0.001 || fail "--url PPL $up differs from in-process $tp"
if "$TRIT" ppl --url "http://127.0.0.1:$P" "${C[@]}" --kl-divergence-base "$TMP/x.bin" 2>"$TMP/e"; then
  fail "--url with a base file should be refused"
fi
grep -q "prompt-token logprobs" "$TMP/e" || fail "unclear --url KLD refusal: $(cat "$TMP/e")"
pass "--url PPL matches in-process; KLD over HTTP refused clearly"

# 4. compare mode -> the gate's file (and a ledger record)
"$TRIT" ppl --gen1 "llama:$M" --gen2 "trit:$M" "${C[@]}" -o "$TMP/ppl.json" --ledger "$TMP/l.jsonl" \
  >"$TMP/cmp.txt" || fail "compare mode failed"
cat "$TMP/cmp.txt" | head -4
jq_ "$TMP/ppl.json" 'd["gen1"]["ppl"] > 0 and d["gen2"]["ppl"] > 0 and d["kld"]["mean"] < 1e-3' | grep -q True ||
  fail "compare JSON lacks gen1/gen2/kld figures"
within "$(jq_ "$TMP/ppl.json" 'd["gen1"]["ppl"]')" "$ref" 0.005 || fail "gen1 (llama:) PPL far from the reference"
grep -q '"type": *"ppl"' "$TMP/l.jsonl" || fail "no ppl record in the ledger"
set +e
"$TRIT" gate --ppl "$TMP/ppl.json" --ledger "$TMP/l.jsonl" >"$TMP/gate.txt" 2>&1
grc=$?
set -e
[ "$grc" -le 1 ] || { cat "$TMP/gate.txt"; fail "gate could not read the ppl file"; }
grep -q "ppl gen-2 vs gen-1" "$TMP/gate.txt" || fail "gate table has no ppl row"
pass "compare mode JSON read by trit gate"

# 5. bad inputs
head -c 5000 "$TMP/ref.bin" >"$TMP/trunc.bin"
set +e
"$TRIT" ppl --backend "trit:$M" --quiet --kl-divergence-base "$TMP/trunc.bin" --kl-divergence 2>"$TMP/e"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "needs" "$TMP/e" || fail "truncated base file: rc $rc, $(cat "$TMP/e")"
printf 'too short\n' >"$TMP/short.txt"
set +e
"$TRIT" ppl --backend "trit:$M" --quiet --text "$TMP/short.txt" --ctx 128 2>"$TMP/e"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "at least 256" "$TMP/e" || fail "short text: rc $rc, $(cat "$TMP/e")"
set +e
"$TRIT" ppl --ctx 128 2>/dev/null; rc1=$?
"$TRIT" ppl --backend "trit:$M" --ctx x 2>/dev/null; rc2=$?
"$TRIT" ppl --help >/dev/null; rc3=$?
set -e
[ "$rc1" = 2 ] && [ "$rc2" = 2 ] && [ "$rc3" = 0 ] || fail "usage exit codes $rc1 $rc2 $rc3"
pass "bad inputs give clear errors"
