#!/usr/bin/env bash
# 80_ladder — `trit ladder --ref llama:M --cand trit:M --all` passes every rung (0 preflight,
# 1 tokens, 2 shapes, 3 first logit, 4 every position, 5 greedy decode) on the tiny synthetic
# models: llama f32, bitnet tq2_0, bitnet tq1_0. The JSON receipt must record the thresholds,
# both backends' provenance (same model sha256) and a pass for each rung. Also: llama vs llama
# passes, --determinism passes for both backends, a missing model is a setup failure (2), and
# llama in-process vs llama-server passes every rung on top-N data.
source "$(dirname "$0")/lib.sh"
[ -e "$(ref_bin libllama.so)" ] || fail "reference libllama.so not built; run scripts/setup"
T="--threads 1"
PROMPT="The quick brown fox jumps over the lazy dog because"

check_receipt() { # check_receipt FILE LABEL
  python3 - "$1" "$2" <<'PY' || fail "$2: receipt check"
import json, sys
r = json.load(open(sys.argv[1])); label = sys.argv[2]
assert r["result"] == "pass", f"{label}: result {r['result']} (first failure {r.get('first_failure')})"
for k in ("first_mse", "first_maxabs", "pos_mse", "pos_kl", "pos_top5", "pos_maxabs", "tie_eps"):
    assert k in r["thresholds"], f"{label}: threshold {k} missing from receipt"
sha_r, sha_c = r["ref"]["model_sha256"], r["cand"]["model_sha256"]
assert len(sha_r) == 64 and sha_r == sha_c, f"{label}: model sha256 {sha_r!r} vs {sha_c!r}"
assert r["ref"]["version"] and r["cand"]["version"], f"{label}: versions missing"
rungs = {x["rung"]: x["status"] for x in r["preflight"]}
for p in r["prompts"]:
    rungs.update({x["rung"]: x["status"] for x in p["rungs"]})
    bad = [x for x in p["rungs"] if x["status"] != "pass"]
    assert not bad, f"{label}: rungs not passing: {bad}"
assert sorted(rungs) == [0, 1, 2, 3, 4, 5], f"{label}: rungs recorded {sorted(rungs)}"
assert all(v == "pass" for v in rungs.values()), f"{label}: {rungs}"
print(f"ok: {label}: every rung passes; sha256 {sha_r[:12]}")
PY
}

# llama vs llama: the ladder itself sees no difference where there is none
M=$(tiny_model llama f32)
"$TRIT" ladder --ref "llama:$M" --cand "llama:$M" --prompt "$PROMPT" --max-tokens 8 --all $T \
  -o "$TMP/ll.json" >"$TMP/ll.txt" || { cat "$TMP/ll.txt"; fail "llama vs llama did not pass"; }
check_receipt "$TMP/ll.json" "llama f32: llama vs llama"

for spec in "llama f32" "bitnet tq2_0" "bitnet tq1_0"; do
  set -- $spec
  M=$(tiny_model "$1" "$2")
  rc=0
  "$TRIT" ladder --ref "llama:$M" --cand "trit:$M" --prompt "$PROMPT" --prompt "Hello" \
    --max-tokens 16 --all $T -o "$TMP/$1-$2.json" >"$TMP/$1-$2.txt" || rc=$?
  cat "$TMP/$1-$2.txt"
  [ "$rc" -eq 0 ] || fail "$1 $2: trit ladder --ref llama --cand trit exited $rc (want 0)"
  grep -q "RESULT: PASS" "$TMP/$1-$2.txt" || fail "$1 $2: no PASS line"
  check_receipt "$TMP/$1-$2.json" "$1 $2: llama vs trit"
done

# determinism: each backend twice gives bit-identical logits
M=$(tiny_model bitnet tq2_0)
for b in llama trit; do
  "$TRIT" ladder --determinism --ref "$b:$M" --prompt "$PROMPT" $T >"$TMP/det-$b.txt" ||
    { cat "$TMP/det-$b.txt"; fail "$b: --determinism failed"; }
  grep -q "bit-identical" "$TMP/det-$b.txt" || fail "$b: determinism output"
  pass "$b: deterministic logits"
done

# setup failure: exit 2, rung 0 named
rc=0
"$TRIT" ladder --ref "llama:$TMP/missing.gguf" --cand "trit:$M" --prompt x $T >"$TMP/miss.txt" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "missing model: exit $rc (want 2)"
grep -q "rung 0" "$TMP/miss.txt" || fail "missing model: rung 0 not named"
pass "missing model is a setup failure (exit 2) at rung 0"

# http backend (llama-server) against the in-process reference on the same file: rungs 3-4
# compare the top-N log-probabilities of every prefix on both sides (the in-process side
# through trit_backend_score too), and every rung passes with a count; rung 0 has both
# sha256 (the server's hashed here from the path it reports: it runs on this machine)
M=$(tiny_model llama f32)
port=$(free_port)
LLAMA_CTX=512 start_llama_server "$M" "$port"
rc=0
"$TRIT" ladder --ref "llama:$M" --cand "http://127.0.0.1:$port" --prompt "$PROMPT" --max-tokens 8 \
  --all $T -o "$TMP/http.json" >"$TMP/http.txt" || rc=$?
cat "$TMP/http.txt"
[ "$rc" -eq 0 ] || fail "llama vs http: exit $rc (want 0)"
python3 - "$TMP/http.json" <<'PY' || fail "llama vs http: rung statuses"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["logits"] == "top-n", r["logits"]
st = {x["rung"]: (x["status"], x["compared"]) for x in r["preflight"] + r["prompts"][0]["rungs"]}
n = r["prompts"][0]["n_tokens"]
assert all(v[0] == "pass" for v in st.values()) and sorted(st) == [0, 1, 2, 3, 4, 5], st
assert st[4][1] == n and st[5][1] >= 1, st
assert r["ref_identity"]["model_sha256"] == r["cand_identity"]["model_sha256"] != ""
print(f"ok: llama in-process vs llama-server: every rung passes on top-N data ({n} positions)")
PY
