#!/usr/bin/env bash
# 91_chat_page — the chat page at / on trit serve: served without the key but behind the
# Host/Origin checks, with its CSP, GET/HEAD only; then driven in headless Chromium
# (tests/browser/chat.js): a greedy streamed reply byte-identical to /v1/chat/completions,
# tokens/s, the template, logprobs on hover, Stop cancelling on the server, markup shown as
# text, the CSP enforced, a keyed server asking for the key. Writes a screenshot
# ($TMP/chat-page.png; TRIT_UPDATE_DOCS_IMG=docs/img/chat-page.png refreshes the docs' one).
source "$(dirname "$0")/lib.sh"

MODEL=$(tiny_model llama f32)
P1=$(free_port)
start_trit_serve "$MODEL" "$P1" --ctx 2048
P2=$(free_port)
KEY=chat-key-$RANDOM$RANDOM
start_trit_serve "$MODEL" "$P2" --ctx 512 --api-key "$KEY"
U1="http://127.0.0.1:$P1" U2="http://127.0.0.1:$P2"

# status METHOD URL [curl args...] -> the HTTP status; headers in $TMP/h, body in $TMP/b
status() {
  local m="$1" u="$2"; shift 2
  curl -s -o "$TMP/b" -D "$TMP/h" -w '%{http_code}' -X "$m" "$u" "$@"
}
for u in "$U1" "$U2"; do
  for p in / /chat.js /chat.css; do
    [ "$(status GET "$u$p")" = 200 ] || fail "GET $u$p without a key: $(cat "$TMP/b" | head -c 300)"
    grep -qi "^Content-Security-Policy: default-src 'none'" "$TMP/h" || fail "GET $u$p: no CSP"
    grep -qi '^X-Content-Type-Options: nosniff' "$TMP/h" || fail "GET $u$p: no nosniff"
  done
done
cmp -s "$TMP/b" "$ROOT/src/server/www/chat.css" || fail "/chat.css is not src/server/www/chat.css"
[ "$(curl -s -o /dev/null -w '%{http_code}' -I "$U1/")" = 200 ] || fail "HEAD /"
[ "$(status POST "$U1/" -d x)" = 405 ] || fail "POST / is not 405"
grep -qi '^Allow: GET, HEAD' "$TMP/h" || fail "405 on / without 'Allow: GET, HEAD'"
[ "$(status GET "$U1/" -H 'Host: evil.example')" = 403 ] || fail "a foreign Host got the page"
[ "$(status GET "$U1/" -H 'Origin: http://evil.example')" = 403 ] || fail "a foreign Origin got the page"
[ "$(status GET "$U1/index.html")" = 404 ] || fail "/index.html is not 404"
[ "$(status GET "$U2/props")" = 401 ] || fail "/props on a keyed server without the key"
[ "$(status GET "$U2/props" -H "Authorization: Bearer $KEY")" = 200 ] || fail "/props with the key"
node -e '
  const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const need = [p.total_slots > 0, p.default_generation_settings.n_ctx === 512, p.build_info,
    p.chat_template.includes("<|im_start|>"), p.chat_template_name === "chatml", p.ui === true,
    p.default_generation_settings.params.temperature > 0, p.trit.numerics, p.trit.kernels];
  if (!need.every(Boolean)) { console.error(JSON.stringify(p).slice(0, 600)); process.exit(1); }
' "$TMP/b" || fail "/props lacks llama-server fields or trit identity"
pass "page routes: no key needed, CSP, HEAD, 405, Host/Origin refused, /props fields"

# A --cors list that does not name the page's own origin: the page still works (its Origin is
# "http://" + the Host it was served from), a foreign origin does not.
P3=$(free_port)
start_trit_serve "$MODEL" "$P3" --ctx 512 --api-key "$KEY" --cors http://other.example
U3="http://127.0.0.1:$P3"
CH='{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
[ "$(status POST "$U3/v1/chat/completions" -H "Authorization: Bearer $KEY" -H "Origin: $U3" \
  -H 'Content-Type: application/json' -d "$CH")" = 200 ] ||
  fail "the page's own origin refused under a --cors list: $(head -c 300 "$TMP/b")"
[ "$(status POST "$U3/v1/chat/completions" -H "Authorization: Bearer $KEY" \
  -H 'Origin: http://evil.example' -H 'Content-Type: application/json' -d "$CH")" = 403 ] ||
  fail "a foreign origin accepted under a --cors list"
[ "$(status POST "$U3/v1/chat/completions" -H "Authorization: Bearer $KEY" -H "Host: 127.0.0.1:$P3" \
  -H "Origin: http://127.0.0.1:$((P3 + 1))" -H 'Content-Type: application/json' -d "$CH")" = 403 ] ||
  fail "another port's page accepted as same-origin"
pass "same-origin: the page's own Origin passes a --cors list, foreign ones do not"

CHAT_KEY="$KEY" browser_test chat.js "$U1" "$U2" "$TMP" || fail "chat page in the browser"
pass "chat page in headless Chromium"
