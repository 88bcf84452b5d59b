#!/usr/bin/env bash
# 86_gates_real_job — the gates on a trained model (models/kjv-bitnet-tq2_0.gguf), where
# distributions are peaked and no-matches are rare and meaningful:
#  1. gen-1 = llama-server, gen-2 = `trit serve` with TRIT_TEST_PERTURB=1 (the test-only
#     switch in src/kernels/ops.c: every RMSNorm scale 1 ulp up). Burn-in + `trit ppl`
#     (reference vs perturbed trit); every no-match in the ledger is classified tie or real,
#     the PPL gate (|dPPL| <= 0.05 on the held-out text) is printed with its verdict, which
#     must be PASS: a 1-ulp change must not move perplexity by 0.05 (and the verdict GO).
#  2. a grossly wrong gen-2: the same weights with bitnet.ffn_activation = relu2 in the
#     metadata (trit honours the key; llama.cpp ignores it and keeps SiLU), i.e. trit serving
#     relu² where gen-1 computes SiLU. `trit gate` must say NO-GO, with the PPL gate failing.
source "$(dirname "$0")/lib.sh"

MODEL="${TRIT_TRAINED_MODEL:-$ROOT/models/kjv-bitnet-tq2_0.gguf}"
HELD="${TRIT_TRAINED_HELDOUT:-$ROOT/models/kjv-heldout.txt}"
[ -s "$MODEL" ] || fail "trained model $MODEL missing (make model)"
[ -x "$(ref_bin llama-server)" ] || fail "reference llama-server not built; run scripts/setup"
CFG="$TMP/gates.ini"
cat >"$CFG" <<'EOF'
[gates]
ppl_max_delta      = 0.05
ppl_max_rel_delta  = 0
exact_min          = 0.50
require_classified = true
rounds_min         = 20
min_samples        = 20
trend_window_rounds = 10
trend_min_rounds   = 10
spike_nomatch      = 1.0
spike_min_rounds   = 10
p95_gap_max_ms     = 100000
v2_unreach_max     = 0.5
ppl_min_tokens     = 1000   # 8 chunks x 127 scored tokens (production: 1024)
EOF

P1=$(free_port); P2=$(free_port)
start_llama_server "$MODEL" "$P1"
TRIT_TEST_PERTURB=1 start_trit_serve "$MODEL" "$P2"

# 1a. burn-in, reference vs perturbed gen-2
L="$TMP/ledger.jsonl"
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$P2" \
  --prompts "$ROOT/prompts/burnin.jsonl" --rounds 24 --pace 0 --max-tokens 24 --ledger "$L" \
  --timeout 120 >"$TMP/burnin.txt" 2>&1 || { cat "$TMP/burnin.txt"; fail "burn-in failed"; }
python3 - "$L" <<'PY' || exit 1
import json, sys
# round records only: identity records open each run
recs = [r for r in (json.loads(l) for l in open(sys.argv[1]) if l.strip()) if r.get("type") == "round"]
buckets = {}
for r in recs:
    buckets[r["bucket"]] = buckets.get(r["bucket"], 0) + 1
    if r["bucket"] == "no-match":
        assert r.get("tie") in ("tie", "real"), f"round {r['round']}: no-match not classified: {r.get('tie')}"
        print(f"  no-match round {r['round']}: classified {r['tie']}")
print(f"ok: perturbed burn-in: {len(recs)} rounds, {buckets}; every no-match classified")
sample = next((r for r in recs if r.get("text_v1")), None)
if sample:
    print("  sample reply (gen-1):", sample["text_v1"][:160].replace("\n", " "))
PY

# 1b. PPL, reference vs perturbed trit, on the held-out text
TRIT_TEST_PERTURB=1 "$TRIT" ppl --gen1 "llama:$MODEL" --gen2 "trit:$MODEL" --text "$HELD" \
  --ctx 256 --chunks 8 --threads 2 --json -o "$TMP/ppl.json" >"$TMP/ppl.txt" 2>&1 ||
  { cat "$TMP/ppl.txt"; fail "trit ppl (perturbed) failed"; }
rc=0
"$TRIT" gate --config "$CFG" --ledger "$L" --ppl "$TMP/ppl.json" >"$TMP/gate1.txt" 2>&1 || rc=$?
cat "$TMP/gate1.txt"
grep -i "ppl" "$TMP/gate1.txt" | grep -q "PASS" || fail "perturbed: the PPL gate did not PASS"
[ "$rc" -eq 0 ] || fail "perturbed: trit gate exit $rc (want 0: GO; a 1-ulp change is not a regression)"
pass "1-ulp perturbed gen-2: PPL gate PASS, GO"

# 2. grossly wrong gen-2: relu² in trit, SiLU in llama.cpp
BAD="$TMP/relu2.gguf"
python3 - "$MODEL" "$BAD" <<'PY' || fail "could not write the relu2 variant"
# Append one string KV (bitnet.ffn_activation = "relu2") to a GGUF: KVs and tensor infos are
# copied, the data section is re-aligned (tensor offsets are relative to it, so unchanged).
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
b = open(src, "rb").read()
assert b[:4] == b"GGUF"
ver, n_t, n_kv = struct.unpack_from("<IQQ", b, 4)
p = 24
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def string(p):
    n, = struct.unpack_from("<Q", b, p)
    return b[p + 8:p + 8 + n].decode(), p + 8 + n
def value(t, p):
    if t == 8:
        return string(p)
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, p)
        p += 12
        for _ in range(n):
            _, p = value(et, p)
        return None, p
    return b[p:p + SIZES[t]], p + SIZES[t]
align = 32
for _ in range(n_kv):
    k, p = string(p)
    t, = struct.unpack_from("<I", b, p)
    v, p = value(t, p + 4)
    if k == "general.alignment":
        align = struct.unpack("<I", v)[0]
kv_end = p
for _ in range(n_t):
    _, p = string(p)
    nd, = struct.unpack_from("<I", b, p)
    p += 4 + 8 * nd + 4 + 8
ti_end = p
data = (ti_end + align - 1) // align * align
key, val = b"bitnet.ffn_activation", b"relu2"
kv = struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", len(val)) + val
head = b[:4] + struct.pack("<IQQ", ver, n_t, n_kv + 1) + b[24:kv_end] + kv + b[kv_end:ti_end]
head += b"\0" * ((-len(head)) % align)
open(dst, "wb").write(head + b[data:])
PY
"$TRIT" inspect "$BAD" >"$TMP/inspect.txt" 2>&1 || fail "trit inspect cannot read the relu2 variant"
grep -q "ffn_activation" "$TMP/inspect.txt" || fail "relu2 variant has no ffn_activation key"
P3=$(free_port)
start_trit_serve "$BAD" "$P3"
L2="$TMP/ledger-bad.jsonl"
"$TRIT" burnin run --v1 "http://127.0.0.1:$P1" --v2 "http://127.0.0.1:$P3" \
  --prompts "$ROOT/prompts/burnin.jsonl" --rounds 20 --pace 0 --max-tokens 16 --ledger "$L2" \
  --timeout 120 >"$TMP/burnin-bad.txt" 2>&1 || true
"$TRIT" ppl --gen1 "llama:$MODEL" --gen2 "trit:$BAD" --text "$HELD" --ctx 256 --chunks 8 \
  --threads 2 --json -o "$TMP/ppl-bad.json" >"$TMP/ppl-bad.txt" 2>&1 || { cat "$TMP/ppl-bad.txt"; fail "trit ppl (relu2) failed"; }
rc=0
"$TRIT" gate --config "$CFG" --ledger "$L2" --ppl "$TMP/ppl-bad.json" >"$TMP/gate2.txt" 2>&1 || rc=$?
cat "$TMP/gate2.txt"
[ "$rc" -eq 1 ] || fail "relu2 gen-2: trit gate exit $rc (want 1: NO-GO)"
grep -q "NO-GO" "$TMP/gate2.txt" || fail "relu2 gen-2: no NO-GO line"
grep -i "ppl" "$TMP/gate2.txt" | grep -q "FAIL" || fail "relu2 gen-2: the PPL gate did not FAIL"
pass "grossly wrong gen-2 (relu² vs SiLU): NO-GO"
