#!/usr/bin/env bash
# 42_avx2_exact — TRIT_KERNELS=avx2 (the avx2 numerics table, kernels.h) reproduces the reference
# built for AVX2 only (`TRIT_REF_SET=avx2 scripts/reference`, build-avx2/) bit for bit:
#  1. the unit suites' ggml comparisons and kernel twins under that table, against build-avx2's
#     own libggml-cpu (test_kernels, test_kquants, test_legacy with TRIT_KERNELS=avx2
#     TRIT_REF_SET=avx2);
#  2. the in-process ladder (`--ref llama:M`, libllama from build-avx2 via TRIT_REF_SET) at
#     max-abs 0 on every rung, 1 and 2 threads, on the demo model and on llama-quantize's
#     default outputs TQ1_0 TQ2_0 Q4_0 Q4_K_M Q6_K of a synthetic f16 model;
#  2b. a burn-in between build-avx2's llama-server and trit serve (TRIT_KERNELS=avx2) on the demo
#     model: 20 of 20 rounds exact;
#  3. `trit doctor` names the table and the build; and the check has teeth: the avx512 table
#     (the default set on an AVX-512 CPU) against build-avx2 is not max-abs 0 on the demo model.
# Builds nothing heavy: skipped (77) when build-avx2 is absent.
source "$(dirname "$0")/lib.sh"
B2="$REF_DIR/build-avx2/bin"
if [ ! -f "$REF_DIR/.complete-avx2" ] || [ ! -e "$B2/libllama.so" ]; then
  echo "skip: no AVX2 reference build ($REF_DIR/build-avx2; TRIT_REF_SET=avx2 scripts/reference)"
  exit 77
fi
grep -qw avx2 /proc/cpuinfo || { echo "skip: this CPU has no AVX2"; exit 77; }
Q="$(ref_bin llama-quantize)"
[ -x "$Q" ] || fail "reference llama-quantize not built ($Q); run scripts/setup"
export TRIT_REF_SET=avx2

# 1. unit suites under the avx2 table, against build-avx2's ggml
for u in test_kernels test_kquants test_legacy; do
  bin="$ROOT/build/tests/$u"
  [ -x "$bin" ] || fail "$bin not built (make units)"
  TRIT_KERNELS=avx2 "$bin" -j1 >"$TMP/$u.log" 2>&1 || { tail -30 "$TMP/$u.log"; fail "$u under the avx2 table"; }
  grep -q "Failing: 0 | Crashing: 0" "$TMP/$u.log" || { tail -5 "$TMP/$u.log"; fail "$u: failures"; }
done
pass "unit suites bit-identical to build-avx2's ggml under the avx2 table"

# 3a. doctor
TRIT_KERNELS=avx2 "$TRIT" doctor >"$TMP/doctor.txt" 2>&1 || true
grep -Eq "numerics +avx2 table: bit-identical to the reference's build-avx2" "$TMP/doctor.txt" ||
  { grep -E "kernels|numerics" "$TMP/doctor.txt"; fail "doctor does not name the avx2 table"; }

PROMPT="The quick brown fox jumps over the lazy dog because"
ladder() { # ladder MODEL TAG THREADS [ENV...] -> receipt $TMP/TAG.json, exit status in $rc
  local m="$1" tag="$2" th="$3"; shift 3
  rc=0
  env "$@" "$TRIT" ladder --ref "llama:$m" --cand "trit:$m" --prompt "$PROMPT" --prompt "Hello" \
    --max-tokens 16 --all --threads "$th" -o "$TMP/$tag.json" >"$TMP/$tag.txt" 2>&1 || rc=$?
}
exact() { # exact MODEL LABEL
  for th in 1 2; do
    ladder "$1" "$2-t$th" "$th" TRIT_KERNELS=avx2
    [ "$rc" -eq 0 ] || { tail -20 "$TMP/$2-t$th.txt"; fail "$2 ($th threads): ladder exited $rc"; }
    local m; m=$(maxabs "$TMP/$2-t$th.json")
    [ "$m" = "0.0" ] || [ "$m" = "0" ] || fail "$2 ($th threads): max-abs $m, want 0"
  done
  pass "$2: every rung, logits bit-identical to build-avx2 (1 and 2 threads)"
}

# 2. the demo model and llama-quantize's default outputs
DEMO="$ROOT/models/kjv-bitnet-tq2_0.gguf"
[ -s "$DEMO" ] || fail "demo model $DEMO missing"
exact "$DEMO" demo
SRC="$(tiny_model llama f16)"
for ft in TQ1_0 TQ2_0 Q4_0 Q4_K_M Q6_K; do
  M="$TMP/llama-$ft.gguf"
  "$Q" "$SRC" "$M" "$ft" 1 >"$TMP/q-$ft.log" 2>&1 || { tail -20 "$TMP/q-$ft.log"; fail "llama-quantize $ft"; }
  exact "$M" "llama-$ft"
done

# 2b. burn-in: build-avx2's llama-server against trit serve under TRIT_KERNELS=avx2 on the demo
#     model: every round exact (the tables agree bit for bit, so no near-tie may excuse a miss),
#     and trit's recorded identity names the avx2 set.
burnin_exact() { # burnin_exact MODEL LABEL
  local p1 p2 l="$TMP/$2-ledger.jsonl" n e
  p1=$(free_port); p2=$(free_port)
  start_llama_server "$1" "$p1"
  TRIT_KERNELS=avx2 start_trit_serve "$1" "$p2"
  "$TRIT" burnin run --v1 "http://127.0.0.1:$p1" --v2 "http://127.0.0.1:$p2" \
    --prompts "$ROOT/prompts/burnin.jsonl" --rounds 20 --pace 0 --max-tokens 16 --ledger "$l" \
    --timeout 120 --quiet >"$TMP/$2-burnin.log" 2>&1 || { tail -20 "$TMP/$2-burnin.log"; fail "$2: burnin run exited"; }
  n=$(grep -c '"type":"round"' "$l" || true)
  e=$(grep '"type":"round"' "$l" | grep -c '"bucket":"exact"' || true)
  [ "$n" -eq 20 ] && [ "$e" -eq 20 ] || fail "$2: burn-in $e of $n rounds exact, want 20 of 20"
  grep '"type":"identity"' "$l" | grep '"side":"v2"' | grep -q 'avx2' ||
    fail "$2: trit's identity in the ledger does not name the avx2 set"
  pass "$2: burn-in against build-avx2's llama-server, 20 of 20 rounds exact"
}
burnin_exact "$DEMO" demo

# 3b. teeth: the avx512 table against build-avx2 differs (only where the CPU has AVX-512)
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512_vnni /proc/cpuinfo; then
  ladder "$DEMO" demo-avx512 1
  m=$(maxabs "$TMP/demo-avx512.json")
  [ "$m" != "0.0" ] && [ "$m" != "0" ] || fail "the avx512 table matched build-avx2 exactly: the check proves nothing"
  pass "avx512 table vs build-avx2: max-abs $m (the tables differ, as they should)"
fi
pass "TRIT_KERNELS=avx2 is bit-identical to the AVX2 reference build"
