#!/usr/bin/env bash
# 92_dashboard — the live burn-in dashboard (parity/dashboard.h) on a real ledger:
#  - a short burn-in between two trit serve instances that disagree (`--fault act=relu2` on
#    gen-2: every round a miss) with the first one again as the noise lane;
#  - `trit burnin dashboard` on it, driven in headless Chromium (tests/browser/dashboard.js):
#    the gate table equals `trit gate --json`, rounds appended by a resumed burn-in appear,
#    a miss shows its highlight at the first divergent byte and its top-k, markup in a reply
#    is text, no console error or CSP violation, the screenshot is not blank
#    (TRIT_DOCS_SHOTS=1 also writes docs/img/dashboard.png);
#  - the ledger's chain is intact afterwards (the test's own append is chained like the writer's);
#  - the intake: a foreign Host 403, a POST 405, the key on the API (not on the page), the
#    open-door rule;
#  - `trit shadow` serves the same page at /parity over its own ledger; in Chromium the page
#    asks for the key and then shows the shadow's round.
source "$(dirname "$0")/lib.sh"

MODEL=$(tiny_model llama f32)
P1=$(free_port); P2=$(free_port)
start_trit_serve "$MODEL" "$P1"
start_trit_serve "$MODEL" "$P2" --fault act=relu2
V1=http://127.0.0.1:$P1 V2=http://127.0.0.1:$P2
L="$TMP/ledger.jsonl"
burnin() { # ROUNDS: run (or resume) the burn-in until the ledger holds ROUNDS rounds
  "$TRIT" burnin run --v1 "$V1" --v2 "$V2" --noise-lane "$V1" --prompts "$ROOT/prompts/burnin.jsonl" \
    --rounds "$1" --pace 0 --max-tokens 6 --ledger "$L" --timeout 60 --quiet
}
burnin 6 || fail "burnin run exited $?"
set +e
"$TRIT" gate --ledger "$L" --json >"$TMP/gate.json"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "trit gate exited $rc, want 1 (NO-GO: too few rounds)"
pass "6-round ledger with misses; trit gate --json written"

# the dashboard; its URL is its first line on stdout
start_dashboard() { # OUT ARGS...: started in the background, URL in $URL
  local out="$1"; shift
  "$TRIT" burnin dashboard --ledger "$L" "$@" >"$out" 2>"$out.err" &
  _pids+=($!)
  URL=""
  for ((i = 0; i < 300; i++)); do
    URL=$(grep -so 'http://[0-9.:]*/' "$out" || true)
    [ -n "$URL" ] && return 0
    sleep 0.1
  done
  cat "$out.err" >&2
  fail "dashboard printed no URL"
}
start_dashboard "$TMP/dash.out"
D1=$URL

# the browser: gate table, updates, the miss view, escaping, screenshot
docs_shot=""
[ "${TRIT_DOCS_SHOTS:-}" = 1 ] && docs_shot="$ROOT/docs/img/dashboard.png"
browser_test dashboard.js "$D1" "$TMP/gate.json" "$L" "$(declare -f burnin); V1=$V1 V2=$V2 L=$L TRIT=$TRIT ROOT=$ROOT burnin 8" \
  "$TMP/dashboard.png" $docs_shot || fail "browser checks (above)"
pass "browser: gate table = trit gate, live update, miss highlight, markup as text, no CSP violation"

"$TRIT" burnin verify --ledger "$L" >"$TMP/verify.txt" || { cat "$TMP/verify.txt"; fail "chain not intact after the test's append"; }
pass "ledger chain intact"

# the intake: Host, method, read-only API; the key on the API only; the open door
host=${D1#http://}; host=${host%/}
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code -H 'Host: evil.example' "${D1}api/summary")" = 403 ] || fail "a foreign Host was not refused"
[ "$(code -X POST -d x "${D1}api/summary")" = 405 ] || fail "POST was not refused"
[ "$(code "${D1}api/miss?id=999999&epoch=0")" = 404 ] || fail "unknown miss not 404"
curl -sI "${D1}dashboard.js" | grep -qi "^content-security-policy: default-src 'none'" || fail "asset without CSP"
TRIT_API_KEY=sekrit start_dashboard "$TMP/dash2.out"
D2=$URL
[ "$(code "${D2}api/gate")" = 401 ] || fail "API without the key not 401"
[ "$(code "${D2}%61pi/gate")" = 401 ] || fail "escaped API path without the key not 401"
[ "$(code -H 'Authorization: Bearer sekrit' "${D2}api/gate")" = 200 ] || fail "API with the key not 200"
[ "$(code "$D2")" = 200 ] || fail "the page itself needs no key"
set +e
"$TRIT" burnin dashboard --ledger "$L" --listen 0.0.0.0:0 >/dev/null 2>"$TMP/open.err"
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "key" "$TMP/open.err" || fail "an open door without a key was not refused (exit $rc)"
pass "intake: Host 403, POST 405, key on the API, open door refused"

# trit shadow: /parity over its own ledger
PX=$(free_port)
LS="$TMP/shadow.jsonl"
TRIT_API_KEY=sekrit "$TRIT" shadow --listen "127.0.0.1:$PX" --primary "$V1" --candidate "$V2" \
  --ledger "$LS" --quiet >"$TMP/shadow.log" 2>&1 &
_pids+=($!)
wait_http "http://127.0.0.1:$PX/health" 30 || { cat "$TMP/shadow.log"; fail "shadow did not start"; }
curl -sf -H 'Authorization: Bearer sekrit' -H 'Content-Type: application/json' \
  -d '{"prompt":"Hello","max_tokens":4,"temperature":0}' "http://127.0.0.1:$PX/v1/completions" >/dev/null ||
  fail "completion through the shadow"
S="http://127.0.0.1:$PX/parity"
for ((i = 0; i < 300; i++)); do
  n=$(curl -s -H 'Authorization: Bearer sekrit' "$S/api/summary" | node -e 'let t="";process.stdin.on("data",c=>t+=c).on("end",()=>{try{console.log(JSON.parse(t).rounds)}catch(e){console.log(-1)}})')
  [ "$n" = 1 ] && break
  sleep 0.1
done
[ "$n" = 1 ] || fail "shadow /parity/api/summary: rounds $n, want 1"
[ "$(code "$S")" = 308 ] || fail "/parity does not redirect to /parity/"
[ "$(code "$S/")" = 200 ] || fail "/parity/ page not served without a key"
curl -s "$S/" | grep -q 'dashboard.js' || fail "/parity/ is not the dashboard"
[ "$(code "$S/api/summary")" = 401 ] || fail "/parity/api without the key not 401"
[ "$(code "$S/%61pi/summary")" = 401 ] || fail "/parity/%61pi (an escaped api) without the key not 401"
[ "$(code -H 'Authorization: Bearer sekrit' -H 'Origin: http://evil.example' "$S/api/summary")" = 403 ] ||
  fail "/parity/api with a foreign Origin not 403"
browser_test dashboard.js --key "$S/" sekrit 1 || fail "browser on /parity with a key (above)"
pass "trit shadow serves the dashboard at /parity (page open, API behind the key)"
