#!/usr/bin/env bash
# 82_trace — `trit trace capture` on both backends (same model, same prompt) and `trit trace
# diff` passes (exit 0, every common point's std ratio in [0.5, 2] and NMSE within bound);
# diff REFUSES all-tokens vs --last-token captures (exit 2, clear message); a RoPE fault is
# named by the diff (Qcur-0 first outside).
source "$(dirname "$0")/lib.sh"
[ -e "$(ref_bin libllama.so)" ] || fail "reference libllama.so not built; run scripts/setup"
T="--threads 1"
PROMPT="The quick brown fox jumps over the lazy dog"
M=$(tiny_model llama f32)

"$TRIT" trace capture "llama:$M" --prompt "$PROMPT" --values -o "$TMP/a.json" $T || fail "capture llama"
"$TRIT" trace capture "trit:$M" --prompt "$PROMPT" --values -o "$TMP/b.json" $T || fail "capture trit"
python3 - "$TMP/a.json" "$TMP/b.json" <<'PY' || fail "capture files"
import json, sys
for f in sys.argv[1:]:
    j = json.load(open(f))
    assert j["sampling"] == "all-tokens" and j["last_token"] is False, f
    names = {p["name"] for p in j["points"]}
    for want in ("attn_norm-0", "Qcur-0", "kqv_out-0", "ffn_out-0", "l_out-1", "result_norm"):
        assert want in names, f"{f}: no {want} in {sorted(names)}"
    for p in j["points"]:
        assert p["count"] == p["ne0"] * p["rows"] and p["rows"] == j["n_tokens"], (f, p)
        for k in ("mean", "std", "min", "max", "nan", "inf", "zero", "hash"):
            assert k in p, (f, k)
print("ok: capture files have the points and per-point stats, rows = all tokens")
PY
"$TRIT" trace diff "$TMP/a.json" "$TMP/b.json" >"$TMP/diff.txt" || { cat "$TMP/diff.txt"; fail "diff llama vs trit: not within band"; }
grep -q "^OK:" "$TMP/diff.txt" || fail "diff: no OK line"
pass "trace diff llama vs trit within band ($(grep '^OK:' "$TMP/diff.txt"))"

"$TRIT" trace capture "trit:$M" --prompt "$PROMPT" --last-token -o "$TMP/c.json" $T || fail "capture --last-token"
rc=0
"$TRIT" trace diff "$TMP/a.json" "$TMP/c.json" >"$TMP/refuse.txt" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "all-tokens vs last-token: exit $rc (want 2: refused)"
grep -q "refusing to compare" "$TMP/refuse.txt" || fail "refusal message: $(cat "$TMP/refuse.txt")"
pass "diff refuses all-tokens vs last-token ($(head -c 120 "$TMP/refuse.txt")...)"

# same prompt, last-token on both sides: comparable
"$TRIT" trace capture "llama:$M" --prompt "$PROMPT" --last-token -o "$TMP/d.json" $T || fail "capture llama --last-token"
"$TRIT" trace diff "$TMP/d.json" "$TMP/c.json" >/dev/null || fail "last-token vs last-token diff"
pass "last-token vs last-token compares"

"$TRIT" trace capture "trit:$M?rope=neox" --prompt "$PROMPT" --values -o "$TMP/e.json" $T || fail "capture rope=neox"
rc=0
"$TRIT" trace diff "$TMP/a.json" "$TMP/e.json" >"$TMP/fault.txt" || rc=$?
[ "$rc" -eq 1 ] || { cat "$TMP/fault.txt"; fail "rope fault: diff exit $rc (want 1)"; }
grep -q "^FIRST OUTSIDE: Qcur-0 (layer 0)" "$TMP/fault.txt" || { cat "$TMP/fault.txt"; fail "rope fault not named at Qcur-0"; }
pass "diff names the RoPE fault: $(grep '^FIRST OUTSIDE' "$TMP/fault.txt")"
