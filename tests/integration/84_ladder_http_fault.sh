#!/usr/bin/env bash
# 84_ladder_http_fault — `trit serve --fault` (a testing aid) breaks the model's graph on
# purpose, so the parity ladder over HTTP must catch it:
#  - llama-server vs trit serve on the demo model: exit 0 (the control);
#  - llama-server vs trit serve --fault act=relu2 (the demo model runs SiLU, as upstream) and
#    vs --fault rope=norm (its RoPE is NEOX): exit 1 at rung 3 (first position's logits) for
#    the activation, at rung 4 for RoPE (position 0 is not rotated: only later positions differ);
#  - the faulty server says so: a WARNING on stderr, "FAULT" in /props' trit numerics and in
#    its system_fingerprint; a bad --fault spec is a usage error (exit 2).
source "$(dirname "$0")/lib.sh"
[ -x "$(ref_bin llama-server)" ] || fail "reference llama-server not built; run scripts/setup"
DEMO="$ROOT/models/kjv-bitnet-tq2_0.gguf"
[ -s "$DEMO" ] || fail "demo model $DEMO missing"
PROMPT="In the beginning God created the heaven and the earth."

lport=$(free_port)
start_llama_server "$DEMO" "$lport"
REF="http://127.0.0.1:$lport"

ladder() { # CAND_URL TAG -> exit code; receipt in $TMP/TAG.json
  local rc=0
  "$TRIT" ladder --ref "$REF" --cand "$1" --prompt "$PROMPT" --max-tokens 8 \
    -o "$TMP/$2.json" >"$TMP/$2.txt" 2>&1 || rc=$?
  echo "$rc"
}

tport=$(free_port)
start_trit_serve "$DEMO" "$tport"
rc=$(ladder "http://127.0.0.1:$tport" clean)
[ "$rc" = 0 ] || { cat "$TMP/clean.txt"; fail "llama-server vs trit serve: exit $rc (want 0)"; }
pass "control: llama-server vs trit serve passes (exit 0)"

for case in act=relu2:3 rope=norm:4; do
  fault=${case%:*} rung=${case#*:}
  fport=$(free_port)
  start_trit_serve "$DEMO" "$fport" --fault "$fault"
  grep -q "WARNING: --fault is on" "$TMP/trit-serve-$fport.log" || fail "--fault $fault: no warning"
  curl -sf "http://127.0.0.1:$fport/props" -o "$TMP/props.json" || fail "--fault $fault: /props"
  python3 - "$TMP/props.json" "$fault" <<'PY' || fail "--fault $fault: /props does not report it"
import json, sys
t = json.load(open(sys.argv[1]))["trit"]
assert "FAULT" in t["numerics"] and sys.argv[2] in t["numerics"], t["numerics"]
assert "FAULT" in t["system_fingerprint"], t["system_fingerprint"]
PY
  rc=$(ladder "http://127.0.0.1:$fport" "fault-$fault")
  cat "$TMP/fault-$fault.txt"
  [ "$rc" = 1 ] || fail "--fault $fault: ladder exit $rc (want 1)"
  python3 - "$TMP/fault-$fault.json" "$rung" <<'PY' || fail "--fault $fault: not rung $rung"
import json, sys
r = json.load(open(sys.argv[1]))
want = int(sys.argv[2])
st = {x["rung"]: x["status"] for x in r["prompts"][0]["rungs"]}
assert all(st.get(k) == "pass" for k in range(1, want)) and st.get(want) == "fail", st
PY
  pass "--fault $fault: warned, FAULT in /props numerics and fingerprint; the ladder fails at rung $rung (exit 1)"
done

rc=0
"$TRIT" serve "$DEMO" --port 0 --fault act=gelu >"$TMP/bad.txt" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "expected act=silu|relu2" "$TMP/bad.txt" ||
  fail "--fault act=gelu: exit $rc $(cat "$TMP/bad.txt")"
pass "a bad --fault spec is a usage error (exit 2)"
