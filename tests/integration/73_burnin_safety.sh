#!/usr/bin/env bash
# 73_burnin_safety — issue 13/14 regressions for the burn-in's files and keys:
#   each server gets its own key (--v1-key / --v2-key-file), the old one-key flag is refused;
#   the ledger and the state file are created 0600; a second writer on a ledger is refused
#   naming it; SIGINT is a clean stop (exit 0); an edited prompt file is reported on resume
#   and recorded as a ledger event.
source "$(dirname "$0")/lib.sh"

MODEL=$(tiny_model llama f32)
P1=$(free_port); P2=$(free_port)
start_llama_server "$MODEL" "$P1" --api-key key-one
start_llama_server "$MODEL" "$P2" --api-key key-two
V1=http://127.0.0.1:$P1 V2=http://127.0.0.1:$P2
PROMPTS="$TMP/prompts.jsonl"
head -4 "$ROOT/prompts/burnin.jsonl" >"$PROMPTS"
KEY2="$TMP/key2"
(umask 077; printf 'key-two\n' >"$KEY2")
run() { "$TRIT" burnin run --prompts "$PROMPTS" --pace 0 --max-tokens 4 --timeout 60 --quiet "$@"; }
buckets() { node -e 'const c={};for(const l of require("fs").readFileSync(process.argv[1],"utf8").split("\n")){if(!l.trim())continue;const r=JSON.parse(l);if(r.type==="round")c[r.bucket]=(c[r.bucket]||0)+1}console.log(JSON.stringify(c))' "$1"; }

# 1. each side its own key: every round compared
L="$TMP/keys.jsonl"
run --v1 "$V1" --v2 "$V2" --v1-key key-one --v2-key-file "$KEY2" --rounds 3 --ledger "$L" ||
  fail "burnin with per-side keys exited $?"
b=$(buckets "$L")
case "$b" in *unreachable*) fail "per-side keys: a side was unreachable: $b" ;; esac
pass "per-side keys: $b"

# 2. swapped keys: gen-1 refuses gen-2's key (so no server ever needed the other's)
L="$TMP/swapped.jsonl"
run --v1 "$V1" --v2 "$V2" --v1-key key-two --v2-key key-one --rounds 2 --ledger "$L" || true
b=$(buckets "$L")
[ "$b" = '{"v1-unreachable":2}' ] || fail "swapped keys: want 2 v1-unreachable, got $b"
pass "swapped keys refused by each server"

# 3. one key for all servers is gone, with a message that says what to use
set +e
out=$(run --v1 "$V1" --v2 "$V2" --api-key key-one --rounds 1 --ledger "$TMP/x.jsonl" 2>&1)
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "--api-key: exit $rc, want 2"
grep -q -- "--v1-key" <<<"$out" || fail "--api-key: message does not name --v1-key: $out"
pass "--api-key refused: $out"

# 4. ledger and state are private
L="$TMP/keys.jsonl"
[ "$(stat -c %a "$L")" = 600 ] || fail "ledger mode $(stat -c %a "$L"), want 600"
[ "$(stat -c %a "$L.state")" = 600 ] || fail "state mode $(stat -c %a "$L.state"), want 600"
ls "$TMP" | grep -q '\.tmp\.' && fail "a temp file was left behind: $(ls "$TMP")"
pass "ledger and state created 0600"

# 5. one writer per ledger; SIGINT stops cleanly with exit 0
L="$TMP/busy.jsonl"
# started directly (not through the run function): $! must be trit itself, not a subshell
# that ignores SIGINT
"$TRIT" burnin run --prompts "$PROMPTS" --max-tokens 4 --timeout 60 --quiet --v1 "$V1" --v2 "$V2" \
  --v1-key key-one --v2-key key-two --forever --pace 0.2s --ledger "$L" &
first=$!
_pids+=("$first")
for _ in $(seq 1 300); do [ -s "$L" ] && break; sleep 0.1; done
[ -s "$L" ] || fail "the first writer wrote nothing"
set +e
out=$(run --v1 "$V1" --v2 "$V2" --v1-key key-one --v2-key key-two --rounds 99 --ledger "$L" 2>&1)
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "second writer: exit $rc, want 1 ($out)"
grep -q "in use" <<<"$out" && grep -qF "$L" <<<"$out" || fail "second writer: message must name the ledger: $out"
pass "second writer refused: $out"
kill -INT "$first"
set +e
timeout 30 tail --pid="$first" -f /dev/null || fail "SIGINT: the burn-in did not stop within 30 s"
wait "$first"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "SIGINT: burn-in exited $rc, want 0 (clean stop)"
pass "SIGINT: clean stop, exit 0"

# 6. an edited prompt file is reported on resume, and recorded
L="$TMP/edit.jsonl"
run --v1 "$V1" --v2 "$V2" --v1-key key-one --v2-key key-two --rounds 2 --ledger "$L" ||
  fail "first run"
grep -q '"prompts_sha256"' "$L.state" || fail "state has no prompts_sha256: $(cat "$L.state")"
sed -n 5p "$ROOT/prompts/burnin.jsonl" >>"$PROMPTS"
out=$(run --v1 "$V1" --v2 "$V2" --v1-key key-one --v2-key key-two --rounds 3 --ledger "$L" 2>&1) ||
  fail "resume after an edit: $out"
grep -q "prompt file .* changed" <<<"$out" || fail "edit not reported: $out"
grep -q '"event":"prompts-changed"' "$L" || fail "no prompts-changed event in the ledger"
[ "$(grep -c '"type":"round"' "$L")" -eq 3 ] || fail "rounds after resume"
pass "edited prompt file reported: $out"
