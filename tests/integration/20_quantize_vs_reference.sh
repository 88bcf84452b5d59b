#!/usr/bin/env bash
# 20_quantize_vs_reference — `trit quantize` is byte-identical to the reference llama-quantize.
# A tiny F32 llama model from `trit mkmodel` is quantized to TQ2_0, TQ1_0, Q8_0, F16, BF16 by both
# tools (embeddings and output kept F32 on both sides): every blk.* tensor must be identical,
# and with --keep-embeddings the whole file (metadata, tensor order, padding) too.
source "$(dirname "$0")/lib.sh"

Q="$(ref_bin llama-quantize)"
[ -x "$Q" ] || fail "reference llama-quantize not built ($Q); run scripts/setup"
F32="$(tiny_model llama f32)"

for ty in tq2_0 tq1_0 q8_0 f16 bf16; do
  "$Q" --token-embedding-type f32 --output-tensor-type f32 "$F32" "$TMP/ref-$ty.gguf" "$ty" 1 \
    >"$TMP/llama-quantize-$ty.log" 2>&1 || { tail -20 "$TMP/llama-quantize-$ty.log" >&2; fail "llama-quantize $ty"; }

  "$TRIT" quantize "$F32" "$TMP/trit-$ty.gguf" "$ty" 2>"$TMP/trit-$ty.log" || { cat "$TMP/trit-$ty.log" >&2; fail "trit quantize $ty"; }
  out=$("$TRIT" quantize --compare "$TMP/ref-$ty.gguf" "$TMP/trit-$ty.gguf" --prefix blk.) \
    || { echo "$out" >&2; fail "$ty: blk.* tensors differ from llama-quantize"; }
  echo "$out" | grep -q "^18 tensors compared with prefix blk.: 18 identical" || { echo "$out" >&2; fail "$ty: expected 18 blk tensors (14 weights, 4 norms)"; }
  # embeddings were converted on the trit side (no --keep-embeddings): the compare must see it
  if "$TRIT" quantize --compare "$TMP/ref-$ty.gguf" "$TMP/trit-$ty.gguf" --prefix token_embd >/dev/null; then
    fail "$ty: --compare did not notice token_embd.weight f32 vs $ty"
  fi

  "$TRIT" quantize "$F32" "$TMP/keep-$ty.gguf" "$ty" --keep-embeddings 2>/dev/null || fail "trit quantize --keep-embeddings $ty"
  cmp "$TMP/ref-$ty.gguf" "$TMP/keep-$ty.gguf" || fail "$ty: whole file differs from llama-quantize's"
  pass "$ty: byte-identical to llama-quantize (blk tensors and whole file)"
done

# mkmodel's direct ternary output equals llama-quantize's quantization of the same F32 model
BF="$(tiny_model bitnet f32)"
for ty in tq2_0 tq1_0; do
  "$Q" --token-embedding-type f16 "$BF" "$TMP/ref-bitnet-$ty.gguf" "$ty" 1 >"$TMP/lq-bitnet-$ty.log" 2>&1 \
    || { tail -20 "$TMP/lq-bitnet-$ty.log" >&2; fail "llama-quantize bitnet $ty"; }
  "$TRIT" quantize --compare "$TMP/ref-bitnet-$ty.gguf" "$(tiny_model bitnet "$ty")" >"$TMP/cmp" \
    || { cat "$TMP/cmp" >&2; fail "mkmodel bitnet $ty differs from llama-quantize of mkmodel bitnet f32"; }
done
pass "mkmodel bitnet tq2_0/tq1_0 == llama-quantize(mkmodel bitnet f32), every tensor"

# ternary round trip: a bitnet tq2_0 model re-quantized to tq1_0 and back gives the same bytes
BT="$(tiny_model bitnet tq2_0)"
"$TRIT" quantize "$BT" "$TMP/bt-tq1.gguf" tq1_0 2>/dev/null && fail "requantizing without --allow-requantize must fail"
"$TRIT" quantize "$BT" "$TMP/bt-tq1.gguf" tq1_0 --allow-requantize --keep-embeddings 2>/dev/null || fail "bitnet tq2_0 -> tq1_0"
"$TRIT" quantize "$TMP/bt-tq1.gguf" "$TMP/bt-tq2.gguf" tq2_0 --allow-requantize --keep-embeddings 2>/dev/null || fail "bitnet tq1_0 -> tq2_0"
"$TRIT" quantize --compare "$BT" "$TMP/bt-tq2.gguf" >/dev/null || fail "tq2_0 -> tq1_0 -> tq2_0 is not lossless on ternary weights"
"$TRIT" quantize "$BT" "$TMP/bt-i2s.gguf" i2_s --allow-requantize --keep-embeddings 2>/dev/null || fail "bitnet tq2_0 -> i2_s"
"$TRIT" quantize "$TMP/bt-i2s.gguf" "$TMP/bt-back.gguf" tq2_0 --allow-requantize --keep-embeddings 2>/dev/null || fail "bitnet i2_s -> tq2_0"
"$TRIT" quantize --compare "$BT" "$TMP/bt-back.gguf" >/dev/null || fail "tq2_0 -> i2_s -> tq2_0 is not lossless on ternary weights"
pass "ternary round trips tq2_0 -> tq1_0 -> tq2_0 and tq2_0 -> i2_s -> tq2_0 are lossless"

# bad input: clear errors, non-zero exit
"$TRIT" quantize "$F32" "$TMP/x.gguf" q4_k 2>"$TMP/err" && fail "q4_k should be refused"
grep -q "unsupported TYPE" "$TMP/err" || fail "no clear message for an unsupported type"
"$TRIT" quantize "$TMP/missing.gguf" "$TMP/x.gguf" q8_0 2>"$TMP/err" && fail "missing input should fail"
[ -s "$TMP/err" ] || fail "no message for a missing input"
pass "bad arguments refused"
