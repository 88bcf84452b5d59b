#!/usr/bin/env bash
# tests/arm64/10_exact — the proof without arm64 hardware (issue 20): trit cross-built for
# aarch64 (build-arm64/trit, the arm64 numerics table) against the aarch64 reference
# (build-arm64/, TRIT_REF_SET=arm64 scripts/reference), both under qemu-aarch64 as a
# Neoverse-N1 (scripts/test-arm64 sets QEMU_CPU, QEMU_LD_PREFIX, TRIT_REF_SET=arm64, TRIT):
#  1. the in-process ladder (`--ref llama:M`: build-arm64's libllama in the aarch64 trit
#     process) on every rung at max-abs 0 with 1 and 2 threads, greedy decode identical, on the
#     demo model, then on llama-quantize's default outputs (TQ1_0 TQ2_0 Q4_0 Q4_K_M Q6_K) of a
#     tiny f16 llama (ARM64_TYPES picks; each is reported, not only pass/fail);
#  2. a short burn-in, llama-server (aarch64) vs trit serve (aarch64): every round exact.
# Run by `make test-arm64` (scripts/test-arm64), not by `make test`. Skipped (77) without the
# aarch64 reference or the binfmt entry that runs its binaries.
source "$(dirname "$0")/../integration/lib.sh"
[ "${TRIT_REF_SET:-}" = arm64 ] || { echo "skip: run through scripts/test-arm64 (TRIT_REF_SET=arm64)"; exit 77; }
[ -f "$REF_DIR/.complete-arm64" ] && [ -e "$REF_BIN/libllama.so" ] ||
  { echo "skip: no aarch64 reference ($REF_DIR/build-arm64; TRIT_REF_SET=arm64 scripts/reference)"; exit 77; }
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "skip: no binfmt entry for aarch64"; exit 77; }
file -L "$TRIT" 2>/dev/null | grep -q aarch64 || fail "TRIT=$TRIT is not an aarch64 binary (make arm64)"

PROMPT="In the beginning God created the heaven and the earth. And the earth was"
# >= 64 tokens: the tiled (prefill) attention and tinyBLAS; "Hello" (4 tokens): the vec paths
LONG=$(head -c 400 "$ROOT/models/kjv-heldout.txt" | tr '\n' ' ')
ladder() { # ladder MODEL TAG THREADS [PROMPT...] -> receipt $TMP/TAG.json, exit status in $rc
  local m="$1" tag="$2" th="$3" p
  shift 3
  local extra=()
  for p in "$@"; do extra+=(--prompt "$p"); done
  rc=0
  "$TRIT" ladder --ref "llama:$m" --cand "trit:$m" --prompt "$PROMPT" --prompt "Hello" "${extra[@]}" \
    --max-tokens 16 --all --threads "$th" -o "$TMP/$tag.json" >"$TMP/$tag.txt" 2>&1 || rc=$?
}
bad=0
exact() { # exact MODEL LABEL [PROMPT...]: pass or report (keeps going: every type a line)
  local model="$1" label="$2" th m
  shift 2
  for th in 1 2; do
    ladder "$model" "$label-t$th" "$th" "$@"
    m=$(maxabs "$TMP/$label-t$th.json" 2>/dev/null || echo "?")
    if [ "$rc" -ne 0 ] || { [ "$m" != "0.0" ] && [ "$m" != "0" ]; }; then
      grep -E "rung|FAIL|fail" "$TMP/$label-t$th.txt" | head -8 >&2
      echo "  ✗ $label ($th threads): ladder exit $rc, max-abs $m" >&2
      bad=$((bad + 1))
      return
    fi
  done
  pass "$label: every rung, max-abs 0 and greedy decode identical to build-arm64 (1 and 2 threads)"
}

DEMO="$ROOT/models/kjv-bitnet-tq2_0.gguf"
exact "$DEMO" demo "$LONG"
# llama-quantize's default outputs (aarch64 llama-quantize) of a tiny f16 llama; ARM64_TYPES=""
# skips them (each takes a minute or two under qemu: a 128256-token Q6_K output matrix)
ARM64_TYPES="${ARM64_TYPES-TQ1_0 TQ2_0 Q4_0 Q4_K_M Q6_K}"
if [ -n "$ARM64_TYPES" ]; then
  SRC="$(tiny_model llama f16)"
  for ft in $ARM64_TYPES; do
    M="$TMP/llama-$ft.gguf"
    "$(ref_bin llama-quantize)" "$SRC" "$M" "$ft" 1 >"$TMP/q-$ft.log" 2>&1 ||
      { tail -5 "$TMP/q-$ft.log"; fail "llama-quantize $ft"; }
    exact "$M" "llama-$ft"
  done
fi

# 2. burn-in: llama-server (aarch64) vs trit serve (aarch64), a few prompts, all exact
P1=$(free_port) P2=$(free_port)
start_llama_server "$DEMO" "$P1"
start_trit_serve "$DEMO" "$P2"
wait_http "http://127.0.0.1:$P2/health" 300 || { tail -20 "$TMP/trit-serve-$P2.log"; fail "trit serve did not start"; }
head -n "${ARM64_BURNIN_ROUNDS:-6}" "$ROOT/prompts/burnin.jsonl" >"$TMP/prompts.jsonl"
n=$(wc -l <"$TMP/prompts.jsonl")
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$P2" \
  --prompts "$TMP/prompts.jsonl" --rounds "$n" --pace 0 --max-tokens 24 --timeout 300 \
  --ledger "$TMP/burnin.jsonl" --quiet >"$TMP/burnin.txt" 2>&1 || { tail -20 "$TMP/burnin.txt"; fail "burnin run"; }
rate=$(python3 - "$TMP/burnin.jsonl" <<'PY'
import json, sys
rounds = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds = [r for r in rounds if r.get("type") == "round"]
ex = sum(1 for r in rounds if r.get("bucket") == "exact")
print(f"{ex}/{len(rounds)}")
PY
)
[ "${rate%/*}" = "${rate#*/}" ] && [ "${rate#*/}" -gt 0 ] || { tail -5 "$TMP/burnin.jsonl"; fail "burn-in llama-server (aarch64) vs trit serve (aarch64): $rate exact"; }
pass "burn-in llama-server (aarch64) vs trit serve (aarch64): $rate rounds exact"
[ "$bad" -eq 0 ] || fail "$bad model(s) not max-abs 0 against build-arm64"
pass "aarch64 trit is bit-identical to the aarch64 reference under qemu"
