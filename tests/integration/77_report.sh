#!/usr/bin/env bash
# 77_report — trit report: a synthetic ledger (300 rounds over 5 hours, every bucket, hostile
# strings, a truncated last line) and a ppl file -> one self-contained HTML page with every
# section, everything escaped, no scripts or network references; rendered in headless
# Chromium (screenshot must exist and be non-trivial). Also a report from a real shadow ledger
# if test 76 left none: a tiny one made here from two trit serve instances.
source "$(dirname "$0")/lib.sh"

python3 - "$TMP/ledger.jsonl" <<'PY'
import json, random, sys
random.seed(7)
out = open(sys.argv[1], "w")
t0 = 1795500000.0
cats = ["code", "reasoning", "creative", "factual", "multilingual"]
for i in range(300):
    pid = f"p{i % 31:02d}"
    r = random.random()
    t1 = f"Reply to {pid}: the answer is <b>42</b> & \"quoted\" 'single' and more text"
    rec = {"type": "round", "source": "burnin", "ts": t0 + i * 60, "round": i, "prompt_id": pid,
           "category": cats[i % 5], "prompt": f"Prompt {pid} <script>alert('x')</script>",
           "lat_v1": 0.05 + random.random() * 0.05, "lat_v2": 0.06 + random.random() * 0.06,
           "ntok_v1": 16, "ntok_v2": 16, "time": f"t{i}"}
    if (pid == "p07" and i > 100) or r < 0.04:
        k = 20 + int(random.random() * 30)
        rec.update(bucket="no-match", tie="tie" if r < 0.02 else "real", prefix_len=k, div_byte=k,
                   div_token_v1=k // 4, div_token_v2=k // 4, text_v1=t1,
                   text_v2=t1[:k] + "<script>alert(1)</script>DIVERGED")
    elif r < 0.06:
        rec.update(bucket="prefix-only", prefix_len=20, div_byte=20, text_v1=t1, text_v2=t1[:20])
    elif r < 0.07:
        rec.update(bucket="v2-unreachable", cause="refused: <connection> refused", text_v1=t1, text_v2="")
    else:
        rec.update(bucket="exact", prefix_len=len(t1), div_byte=-1, text_v1=t1, text_v2=t1)
    out.write(json.dumps(rec) + "\n")
out.write('{"type":"round","source":"burnin","ts":1795518000,"round":300,"bucket":"exa')
PY
cat >"$TMP/ppl.json" <<'J'
{"gen1":{"source":"llama:m.gguf","ppl":12.3456,"ppl_err":0.2},"gen2":{"source":"trit:m.gguf","ppl":12.3501,"ppl_err":0.2},
 "kld":{"mean":0.00012,"max":0.01,"same_top":0.995,"rms_dp":0.003},"delta_ppl":0.0045,"ctx":128,"chunks":4,"text":"GPL-3"}
J
"$TRIT" report --ledger "$TMP/ledger.jsonl" --ppl "$TMP/ppl.json" -o "$TMP/r.html" 2>"$TMP/err" ||
  { cat "$TMP/err"; fail "report failed"; }
H="$TMP/r.html"
head -c 15 "$H" | grep -q '<!DOCTYPE html>' || fail "not an HTML document"
tail -c 20 "$H" | grep -q '</html>' || fail "document not closed"
for id in gates summary ppl exact-rate latency divergence prompts misses; do
  grep -q "<section id=$id>" "$H" || fail "section $id missing"
done
[ "$(grep -c '<svg' "$H")" -ge 3 ] || fail "expected inline SVG charts"
grep -qi '<script' "$H" && fail "unescaped <script> in the page"
grep -Eqi '(src|href)=["'"'"']?(https?:)?//' "$H" && fail "page references the network"
grep -q '&lt;script&gt;alert(1)&lt;/script&gt;' "$H" || fail "hostile reply not escaped"
grep -q '<mark>' "$H" || fail "no divergence highlight"
# a synthetic ledger written without the writer: unchained, so the gate gives no verdict
grep -q 'REFUSED — ledger .* is unchained' "$H" || fail "gate verdict (REFUSED: unchained) missing"
grep -q 'p07' "$H" || fail "top-miss prompt missing"
grep -q '1 malformed lines skipped' "$H" || fail "truncated line not reported as skipped"
python3 - "$H" <<'PY' || fail "HTML does not parse cleanly"
import sys, html.parser
class P(html.parser.HTMLParser):
    void = {"meta", "br", "img", "hr", "input", "link", "rect", "line", "circle", "polyline"}
    def __init__(s): super().__init__(); s.stack = []; s.bad = 0
    def handle_starttag(s, t, a):
        if t not in s.void: s.stack.append(t)
    def handle_startendtag(s, t, a): pass
    def handle_endtag(s, t):
        if t in s.void: return
        if not s.stack or s.stack[-1] != t: s.bad += 1; print("mismatch", t, s.stack[-3:])
        else: s.stack.pop()
p = P(); p.feed(open(sys.argv[1], encoding="utf-8").read())
sys.exit(1 if p.bad or p.stack else 0)
PY
pass "report has every section, escapes everything, parses cleanly"

CHROME=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROME" ] || fail "chromium not installed"
timeout 90 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$(mktemp -d "$TMP/chr.XXXX")" \
  --screenshot="$TMP/r.png" --window-size=1200,2000 "file://$H" >"$TMP/chrome.log" 2>&1 || true
[ -s "$TMP/r.png" ] || { tail "$TMP/chrome.log"; fail "no screenshot"; }
sz=$(stat -c %s "$TMP/r.png")
echo "screenshot: $TMP/r.png ($sz bytes)"
[ "$sz" -gt 50000 ] || fail "screenshot suspiciously small ($sz bytes): blank page?"
pass "renders in headless Chromium"

# a real (short) shadow ledger
M=$(tiny_model bitnet tq2_0)
P1=$(free_port); P2=$(free_port); PX=$(free_port)
start_trit_serve "$M" "$P1"
start_trit_serve "$M" "$P2"
"$TRIT" shadow --listen "127.0.0.1:$PX" --primary "http://127.0.0.1:$P1" --candidate "http://127.0.0.1:$P2" \
  --ledger "$TMP/real.jsonl" --quiet >"$TMP/shadow.log" 2>&1 &
_pids+=($!)
wait_http "http://127.0.0.1:$PX/health" 60 || fail "shadow did not start"
for i in 1 2 3 4 5; do
  curl -sf -o /dev/null "http://127.0.0.1:$PX/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"prompt\":\"Real round $i\",\"max_tokens\":6,\"temperature\":0}" || fail "request $i failed"
done
for ((i = 0; i < 600; i++)); do [ "$(grep -c '"type":"round"' "$TMP/real.jsonl" 2>/dev/null || echo 0)" -ge 5 ] && break; sleep 0.1; done
"$TRIT" report --ledger "$TMP/real.jsonl" -o "$TMP/real.html" 2>/dev/null || fail "report from a real ledger failed"
grep -q 'exact 5' "$TMP/real.html" || fail "real report does not show 5 exact rounds"
[ "$(stat -c %a "$TMP/real.html")" = 600 ] || fail "report not written 0600"
pass "report from a real shadow ledger"

set +e
"$TRIT" report -o "$TMP/x.html" 2>/dev/null; r1=$?
"$TRIT" report --ledger "$TMP/nope.jsonl" -o "$TMP/x.html" 2>"$TMP/e"; r2=$?
"$TRIT" report --ledger "$TMP/ledger.jsonl" --ppl "$TMP/ledger.jsonl" -o "$TMP/x.html" 2>/dev/null; r3=$?
set -e
[ "$r1$r2$r3" = 222 ] || fail "bad inputs: exit codes $r1 $r2 $r3"
grep -q nope "$TMP/e" || fail "missing ledger not named in the error"
pass "bad inputs exit 2 with clear errors"
