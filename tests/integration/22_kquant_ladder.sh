#!/usr/bin/env bash
# 22_kquant_ladder — k-quant GGUFs written by the reference's own llama-quantize (default options,
# no imatrix) run bit-identically in trit: `trit ladder --ref llama:M --cand trit:M --all` passes
# every rung with the first logit and every position's logits exactly equal (max-abs 0).
# Mixes: llama Q4_K_M, Q6_K, Q2_K, Q3_K_M, Q5_K_M (together every type Q2_K..Q6_K, incl. the
# Q4_K/Q2_K matrices the reference repacks), and the ternary defaults that store k-quant
# embeddings/heads: llama TQ2_0 (Q4_K token_embd, Q6_K output) and bitnet TQ2_0 (tied Q6_K, and
# with --token-embedding-type q4_K a tied Q4_K head, which the reference does not repack).
# One Q4_K_M run uses TRIT_KERNELS=avx2 against the AVX2 reference build (its numerics table,
# kernels.h; only where build-avx2 exists) and one uses 2 threads.
# Q4_0, the other type the reference repacks (same mechanism, kernels.h TRIT_REPACK8): a llama
# Q4_0 file (1 and 2 threads) and a bitnet one with a tied Q4_0 head (not repacked there).
source "$(dirname "$0")/lib.sh"
Q="$(ref_bin llama-quantize)"
[ -x "$Q" ] || fail "reference llama-quantize not built ($Q); run scripts/setup"
[ -e "$(ref_bin libllama.so)" ] || fail "reference libllama.so not built; run scripts/setup"
PROMPT="The quick brown fox jumps over the lazy dog because"

check_exact() { # check_exact RECEIPT LABEL
  python3 - "$1" "$2" <<'PY' || fail "$2: receipt check"
import json, sys
r = json.load(open(sys.argv[1])); label = sys.argv[2]
assert r["result"] == "pass", f"{label}: result {r['result']} (first failure {r.get('first_failure')})"
for p in r["prompts"]:
    st = {x["rung"]: x for x in p["rungs"]}
    assert sorted(st) == [1, 2, 3, 4, 5], f"{label}: rungs {sorted(st)}"
    bad = [n for n, x in st.items() if x["status"] != "pass"]
    assert not bad, f"{label}: rungs not passing: {bad}"
    m3, m4 = st[3]["metrics"], st[4]["metrics"]
    assert m3["max_abs"] == 0 and m4["max_abs"] == 0, \
        f"{label}: logits not bit-identical (first {m3['max_abs']}, positions {m4['max_abs']})"
print(f"ok: {label}: every rung passes, logits bit-identical")
PY
}

seen="" runs=0
run_mix() { # run_mix ARCH SRC_TYPE FTYPE [ENV...]
  local arch="$1" src="$2" ft="$3"; shift 3
  local M="$TMP/$arch-$ft${QARGS:+-$(printf '%s' "$QARGS" | tr -c 'A-Za-z0-9_' _)}.gguf"
  # shellcheck disable=SC2086 # QARGS: extra llama-quantize options, word-split on purpose
  [ -s "$M" ] || "$Q" ${QARGS:-} "$(tiny_model "$arch" "$src")" "$M" "$ft" 1 >"$TMP/q-$arch-$ft.log" 2>&1 ||
    { tail -20 "$TMP/q-$arch-$ft.log" >&2; fail "llama-quantize $arch $ft"; }
  local types; types=$("$TRIT" inspect "$M" | awk '$2 ~ /^(q[2-6]_K|q4_0)$/ {print $2}' | sort -u | tr '\n' ' ')
  [ -n "$types" ] || fail "$arch $ft: no k-quant (or q4_0) tensors in the file"
  seen="$seen $types"
  runs=$((runs + 1))
  local tag="$runs-$arch-$ft" rc=0
  env "$@" "$TRIT" ladder --ref "llama:$M" --cand "trit:$M" --prompt "$PROMPT" --prompt "Hello" \
    --max-tokens 16 --all --threads "${THREADS:-1}" -o "$TMP/$tag.json" >"$TMP/$tag.txt" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { cat "$TMP/$tag.txt"; fail "$arch $ft ($*): ladder exited $rc (want 0)"; }
  check_exact "$TMP/$tag.json" "$arch $ft ${QARGS:-} [$types] $*"
}

run_mix llama f16 Q4_K_M
if [ -f "$REF_DIR/.complete-avx2" ]; then run_mix llama f16 Q4_K_M TRIT_KERNELS=avx2 TRIT_REF_SET=avx2; fi
THREADS=2 run_mix llama f16 Q4_K_M TRIT_KERNELS=ref
run_mix llama f16 Q6_K
run_mix llama f16 Q2_K
run_mix llama f16 Q3_K_M
run_mix llama f16 Q5_K_M
run_mix llama f16 TQ2_0
run_mix bitnet f32 TQ2_0
# a tied Q4_K head: token_embd is never repacked by the reference (TRIT_NO_REPACK)
QARGS="--token-embedding-type q4_K" run_mix bitnet f32 TQ2_0
run_mix llama f16 Q4_0
THREADS=2 run_mix llama f16 Q4_0
QARGS="--token-embedding-type q4_0" run_mix bitnet f32 Q4_0

for t in q2_K q3_K q4_K q5_K q6_K q4_0; do
  case " $seen " in *" $t "*) ;; *) fail "type $t was not covered by any mix (saw:$seen)" ;; esac
done
pass "every k-quant type (q2_K..q6_K) and q4_0 ran bit-identically to llama.cpp"
