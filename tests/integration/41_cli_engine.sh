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
a=$("$TRIT" run "$M" --prompt-ids 128000,791,6864 -n 12 --ids 2>/dev/null)
b=$("$TRIT" run "$M" --prompt-ids 128000,791,6864 -n 12 --ids -t 2 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "greedy run differs between 1 and 2 threads: '$a' vs '$b'"
set +e
"$TRIT" run "$TMP/missing.gguf" -p hi >/dev/null 2>"$TMP/e1"; rc1=$?
"$TRIT" bench "$M" -p -3 >/dev/null 2>"$TMP/e2"; rc2=$?
"$TRIT" bench "$M" --numerics sloppy >/dev/null 2>"$TMP/e3"; rc3=$?
"$TRIT" bench "$M" --bw-gbs nope >/dev/null 2>"$TMP/e4"; rc4=$?
set -e
[ "$rc3" -eq 2 ] && grep -q "numerics.*sloppy" "$TMP/e3" || fail "bad --numerics: rc $rc3, $(cat "$TMP/e3")"
[ "$rc4" -eq 2 ] && grep -q "bw-gbs.*nope" "$TMP/e4" || fail "bad --bw-gbs: rc $rc4, $(cat "$TMP/e4")"
[ "$rc1" -ne 0 ] && grep -qi 'missing.gguf' "$TMP/e1" || fail "missing model: rc $rc1, $(cat "$TMP/e1")"
[ "$rc2" -ne 0 ] && [ -s "$TMP/e2" ] || fail "bad -p: rc $rc2"
pass "bench -p 0 x3, bench --json with the bound, --numerics fast, run deterministic across threads, clear errors"
