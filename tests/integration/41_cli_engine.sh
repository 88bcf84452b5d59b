#!/usr/bin/env bash
# 41_cli_engine — `trit run` and `trit bench` as a user runs them: decode-only bench (-p 0, which
# once read an uninitialised token), JSON output, greedy run determinism, clear errors.
source "$(dirname "$0")/lib.sh"
M=$(tiny_model bitnet tq2_0)
for i in 1 2 3; do
  "$TRIT" bench "$M" -p 0 -n 8 -r 1 -t 2 --no-bound >"$TMP/b0.txt" 2>&1 || { cat "$TMP/b0.txt"; fail "bench -p 0 run $i"; }
  grep -q '^| tg8 ' "$TMP/b0.txt" || fail "bench -p 0 printed no tg8 row"
done
"$TRIT" bench "$M" -p 16 -n 4 -r 2 --bw-gbs 10 --json >"$TMP/b.json" || fail "bench --json"
node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1]));
  const s=JSON.stringify(d); if(!/pp/.test(s)||!/tg/.test(s)) process.exit(1);
  // the bound is bandwidth / weight bytes per token, and % of bound follows from it
  const b=10e9/d.bytes_per_token;
  if(!(d.bytes_per_token>0) || Math.abs(d.tg_bound_tps-b)>1e-6*b ||
     Math.abs(d.tg_pct_bound-100*d.tg_tps/b)>1e-6*d.tg_pct_bound || d.numerics!=="exact") process.exit(1)' "$TMP/b.json" ||
  fail "bench --json is not JSON with pp, tg and the bound: $(cat "$TMP/b.json")"
# the measured bound (text) and fast numerics
"$TRIT" bench "$M" -p 0 -n 4 -r 1 -t 2 --numerics fast >"$TMP/bf.txt" 2>&1 || { cat "$TMP/bf.txt"; fail "bench --numerics fast"; }
grep -q '^tg bound: .* GB/s read' "$TMP/bf.txt" && grep -qE '^\| tg4 .*[0-9]%' "$TMP/bf.txt" &&
  grep -q 'numerics fast' "$TMP/bf.txt" || fail "bench printed no % of bound / numerics: $(cat "$TMP/bf.txt")"
# --parallel: batched tg (N sequences per step), the aggregate bound N times the single one
"$TRIT" bench "$M" -p 0 -n 6 -r 1 -t 2 --parallel 3 --bw-gbs 10 --json >"$TMP/bp.json" ||
  fail "bench --parallel 3"
python3 - "$TMP/b.json" "$TMP/bp.json" <<'PY' || fail "bench --parallel JSON: $(cat "$TMP/bp.json")"
import json, sys
one, par = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert par["parallel"] == 3 and one["parallel"] == 1, "parallel field"
assert abs(par["tg_bound_tps"] - 3 * one["tg_bound_tps"]) < 1e-6 * par["tg_bound_tps"], "bound x3"
assert par["tg_tps"] > 0
PY
"$TRIT" bench "$M" -p 0 -n 4 -r 1 -t 2 --parallel 2 --no-bound >"$TMP/bp.txt" 2>&1 &&
  grep -q '^| tg4x2 ' "$TMP/bp.txt" || fail "bench --parallel 2 printed no tg4x2 row: $(cat "$TMP/bp.txt")"
a=$("$TRIT" run "$M" --prompt-ids 128000,791,6864 -n 12 --ids 2>/dev/null)
b=$("$TRIT" run "$M" --prompt-ids 128000,791,6864 -n 12 --ids -t 2 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "greedy run differs between 1 and 2 threads: '$a' vs '$b'"
# --numerics fast computes attention in f32 without llama.cpp's fp16 round trips: with an f32
# KV cache (where exact has none either) it must agree with exact (same greedy tokens, top-1
# logprobs within 1e-4); with 1 and 2 threads it must be deterministic.
for nm in exact fast; do
  "$TRIT" run "$M" --prompt-ids 128000,791,6864,315,9822,374 -n 12 --json --ignore-eos --kv-type f32 \
    --numerics $nm >"$TMP/n-$nm.json" 2>/dev/null || fail "run --numerics $nm"
done
python3 - "$TMP/n-exact.json" "$TMP/n-fast.json" <<'PY' || fail "--numerics fast disagrees with exact (f32 KV)"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
d = max(abs(x[0]["logprob"] - y[0]["logprob"]) for x, y in zip(a["top5"], b["top5"]))
print(f"fast vs exact (f32 KV): ids equal {a['ids'] == b['ids']}, worst top-1 logprob diff {d:.3g}")
sys.exit(0 if a["ids"] == b["ids"] and len(a["top5"]) == 12 and d <= 1e-4 else 1)
PY
f1=$("$TRIT" run "$M" --prompt-ids 128000,791,6864 -n 12 --ids --numerics fast 2>/dev/null)
f2=$("$TRIT" run "$M" --prompt-ids 128000,791,6864 -n 12 --ids --numerics fast -t 2 2>/dev/null)
[ -n "$f1" ] && [ "$f1" = "$f2" ] || fail "fast run differs between 1 and 2 threads: '$f1' vs '$f2'"
set +e
"$TRIT" run "$M" --prompt-ids 1,2 --numerics turbo >/dev/null 2>"$TMP/e5"; rc5=$?
"$TRIT" run "$TMP/missing.gguf" -p hi >/dev/null 2>"$TMP/e1"; rc1=$?
"$TRIT" bench "$M" -p -3 >/dev/null 2>"$TMP/e2"; rc2=$?
"$TRIT" bench "$M" --numerics sloppy >/dev/null 2>"$TMP/e3"; rc3=$?
"$TRIT" bench "$M" --bw-gbs nope >/dev/null 2>"$TMP/e4"; rc4=$?
"$TRIT" bench "$M" --parallel 0 >/dev/null 2>"$TMP/e6"; rc6=$?
set -e
[ "$rc6" -eq 2 ] && grep -q "parallel.*1\.\.256" "$TMP/e6" || fail "bad --parallel: rc $rc6, $(cat "$TMP/e6")"
[ "$rc5" -eq 2 ] && grep -q "numerics.*turbo" "$TMP/e5" || fail "run bad --numerics: rc $rc5, $(cat "$TMP/e5")"
[ "$rc3" -eq 2 ] && grep -q "numerics.*sloppy" "$TMP/e3" || fail "bad --numerics: rc $rc3, $(cat "$TMP/e3")"
[ "$rc4" -eq 2 ] && grep -q "bw-gbs.*nope" "$TMP/e4" || fail "bad --bw-gbs: rc $rc4, $(cat "$TMP/e4")"
[ "$rc1" -ne 0 ] && grep -qi 'missing.gguf' "$TMP/e1" || fail "missing model: rc $rc1, $(cat "$TMP/e1")"
[ "$rc2" -ne 0 ] && [ -s "$TMP/e2" ] || fail "bad -p: rc $rc2"
pass "bench -p 0 x3, bench --json with the bound, --parallel (batched tg), --numerics fast (bench, run: agrees with exact at f32 KV), run deterministic across threads, clear errors"
