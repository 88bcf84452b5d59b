#!/usr/bin/env bash
# 81_ladder_faults — deliberately broken candidates are caught at the right rung and pinpointed:
#  1. trit with the other RoPE convention (trit:M?rope=neox on a llama model, NORM in llama.cpp)
#     fails at rung 3 or 4 (exit 1) and --bisect names Qcur-0 or kqv_out-0 (layer 0) as the
#     first diverging trace point.
#  2. a bitnet model whose metadata says relu2 (trit honours it; upstream llama.cpp ignores the
#     key and uses SiLU) is pinpointed to an ffn_* point of layer 0.
#  3. a bad --thresholds value is a usage error (exit 2).
source "$(dirname "$0")/lib.sh"
[ -e "$(ref_bin libllama.so)" ] || fail "reference libllama.so not built; run scripts/setup"
T="--threads 1"
PROMPT="The quick brown fox jumps over the lazy dog"

M=$(tiny_model llama f32)
rc=0
"$TRIT" ladder --ref "llama:$M" --cand "trit:$M?rope=neox" --prompt "$PROMPT" --bisect $T \
  -o "$TMP/rope.json" >"$TMP/rope.txt" || rc=$?
cat "$TMP/rope.txt"
[ "$rc" -eq 1 ] || fail "rope=neox: exit $rc (want 1: divergence)"
python3 - "$TMP/rope.json" <<'PY' || fail "rope=neox: wrong rung or point"
import json, sys
r = json.load(open(sys.argv[1]))
ff = r["first_failure"]
assert ff["rung"] in (3, 4), f"first failing rung {ff}"
b = r["prompts"][0]["bisect"]
d = b["first_divergence"]
assert d and d["layer"] == 0 and d["point"] in ("Qcur-0", "kqv_out-0"), f"first divergence {d}"
assert b["shortest_failing_prefix"] >= 2, b   # RoPE is the identity at position 0
print(f"ok: rope=neox caught at rung {ff['rung']} ({ff['name']}); shortest failing prefix "
      f"{b['shortest_failing_prefix']}; first divergence {d['point']} at position {d['position']}")
PY

R=$(tiny_model bitnet tq2_0 --act relu2)
rc=0
"$TRIT" ladder --ref "llama:$R" --cand "trit:$R" --prompt "$PROMPT" --bisect $T \
  -o "$TMP/relu2.json" >"$TMP/relu2.txt" || rc=$?
cat "$TMP/relu2.txt"
[ "$rc" -eq 1 ] || fail "relu2 vs silu: exit $rc (want 1: divergence)"
python3 - "$TMP/relu2.json" <<'PY' || fail "relu2 vs silu: not pinpointed to ffn_* of layer 0"
import json, sys
r = json.load(open(sys.argv[1]))
ff = r["first_failure"]
assert ff["rung"] in (3, 4), f"first failing rung {ff}"
d = r["prompts"][0]["bisect"]["first_divergence"]
assert d and d["layer"] == 0 and d["point"].startswith("ffn_"), f"first divergence {d}"
print(f"ok: relu2 metadata vs upstream SiLU caught at rung {ff['rung']}; first divergence "
      f"{d['point']} (layer 0, position {d['position']})")
PY

rc=0
"$TRIT" ladder --ref "llama:$M" --cand "trit:$M" --prompt x --thresholds pos_kl=abc >/dev/null 2>"$TMP/th.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "pos_kl" "$TMP/th.err" || fail "bad --thresholds: exit $rc"
pass "bad --thresholds is a usage error naming the key"
