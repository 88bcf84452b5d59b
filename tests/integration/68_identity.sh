#!/usr/bin/env bash
# 68_identity — what servers say they are, on the demo model: trit serve's GET /props and
# /v1/models report the model file's sha256 and size (equal to sha256sum and stat), its build
# (trit's version + commit), numerics, kernel set, threads, slots and a per-process instance
# (two processes differ; a third started the same way digests the same as the first); every
# completion reply and stream chunk carries the same system_fingerprint; /props obeys the API
# key, Host and Origin checks. The reference llama-server is recognized as llama.cpp from its
# /props and /v1/models, with the same n_params and tensor size as trit reports for the file.
# `trit doctor --url` shows each identity; its digests tell engines and numerics apart.
source "$(dirname "$0")/lib.sh"
[ -x "$(ref_bin llama-server)" ] || fail "reference llama-server not built (scripts/reference)"
MODEL="$ROOT/models/kjv-bitnet-tq2_0.gguf"
[ -s "$MODEL" ] || fail "demo model $MODEL missing"
SHA=$(sha256sum "$MODEL" | cut -d' ' -f1)
SIZE=$(stat -c %s "$MODEL")

# jget FILE EXPR -> python expression over the parsed JSON `d`, printed
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# get URL OUT [curl args] -> HTTP status; body in OUT
get() { local u="$1" o="$2"; shift 2; curl -s -o "$o" -w '%{http_code}' "$u" "$@"; }

KEYFILE="$TMP/key"
printf 'ident-key-%s\n' "$RANDOM" >"$KEYFILE"
chmod 600 "$KEYFILE"
KEY=$(head -1 "$KEYFILE")
PA=$(free_port)
PB=$(free_port)
PC=$(free_port)
PL=$(free_port)
start_trit_serve "$MODEL" "$PA" --slots 2 --api-key-file "$KEYFILE"
start_trit_serve "$MODEL" "$PB" --slots 1 --numerics fast
start_trit_serve "$MODEL" "$PC" --slots 2
start_llama_server "$MODEL" "$PL"
A="http://127.0.0.1:$PA" B="http://127.0.0.1:$PB" C="http://127.0.0.1:$PC" L="http://127.0.0.1:$PL"
AUTH=(-H "Authorization: Bearer $KEY")

# --- /props needs the key (as in llama-server: only /health is public), Host and Origin ---
[ "$(get "$A/props" "$TMP/p")" = 401 ] || fail "/props without the key: $(cat "$TMP/p")"
[ "$(get "$A/props" "$TMP/p" -H 'Authorization: Bearer wrong')" = 401 ] || fail "/props, wrong key"
[ "$(get "$A/health" "$TMP/p")" = 200 ] || fail "/health must stay public"
[ "$(get "$A/props" "$TMP/p" "${AUTH[@]}" -H 'Host: evil.example')" = 403 ] || fail "/props, foreign Host"
[ "$(get "$A/props" "$TMP/p" "${AUTH[@]}" -H 'Origin: http://evil.example')" = 403 ] || fail "/props, foreign Origin"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$A/props" "${AUTH[@]}" -d '{}')" = 405 ] || fail "POST /props"
pass "/props: key, Host and Origin checks as every route"

# --- trit serve's /props: the model's bytes, once hashed (a background thread) ---
props_done() { # URL OUT [curl args]: /props once the hash is no longer pending
  local u="$1" o="$2" i; shift 2
  for ((i = 0; i < 600; i++)); do
    [ "$(get "$u/props" "$o" "$@")" = 200 ] || fail "$u/props: $(cat "$o")"
    [ "$(jget "$o" 'd["trit"]["model_sha256_state"]')" = pending ] || return 0
    sleep 0.1
  done
  fail "$u: model hash still pending after 60 s"
}
props_done "$A" "$TMP/pa.json" "${AUTH[@]}"
props_done "$B" "$TMP/pb.json"
props_done "$C" "$TMP/pc.json"
t() { jget "$1" "d['trit']['$2']"; }
[ "$(t "$TMP/pa.json" model_sha256_state)" = done ] || fail "hash state: $(t "$TMP/pa.json" model_sha256_state)"
[ "$(t "$TMP/pa.json" model_sha256)" = "$SHA" ] || fail "sha256 $(t "$TMP/pa.json" model_sha256) != sha256sum $SHA"
[ "$(t "$TMP/pa.json" model_size)" = "$SIZE" ] || fail "model_size $(t "$TMP/pa.json" model_size) != $SIZE"
BUILD=$("$TRIT" --version | awk '{print $2}') # "0.1.0+<commit>": what /props calls build
VERSION=${BUILD%%+*}
[ "$(t "$TMP/pa.json" version)" = "$VERSION" ] || fail "version $(t "$TMP/pa.json" version) != $VERSION"
COMMIT=$(t "$TMP/pa.json" commit)
[ -n "$COMMIT" ] || fail "no commit"
[ "$(t "$TMP/pa.json" build)" = "$VERSION+$COMMIT" ] || fail "build $(t "$TMP/pa.json" build)"
[ "$BUILD" = "$VERSION+$COMMIT" ] || fail "trit --version says $BUILD, /props $VERSION+$COMMIT"
[ "$(jget "$TMP/pa.json" 'd["build_info"]')" = "$VERSION+$COMMIT" ] || fail "build_info"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  [[ "$COMMIT" == "$(git -C "$ROOT" rev-parse --short=7 HEAD)"* ]] || echo "note: built from $COMMIT, the tree is at $(git -C "$ROOT" rev-parse --short HEAD)" >&2
fi
[ "$(t "$TMP/pa.json" numerics)" = exact ] || fail "numerics A"
[ "$(t "$TMP/pb.json" numerics)" = fast ] || fail "numerics B"
[ -n "$(t "$TMP/pa.json" kernels)" ] || fail "kernels"
[ "$(t "$TMP/pa.json" threads)" = 1 ] || fail "threads $(t "$TMP/pa.json" threads)"
[ "$(t "$TMP/pa.json" slots)" = 2 ] && [ "$(jget "$TMP/pa.json" 'd["total_slots"]')" = 2 ] || fail "slots"
[ "$(t "$TMP/pa.json" n_vocab)" = 2048 ] || fail "n_vocab"
[ "$(jget "$TMP/pa.json" 'd["default_generation_settings"]["n_ctx"]')" = "$(t "$TMP/pa.json" n_ctx)" ] || fail "n_ctx"
IA=$(t "$TMP/pa.json" instance) IB=$(t "$TMP/pb.json" instance) IC=$(t "$TMP/pc.json" instance)
[[ "$IA" =~ ^[0-9a-f]{32}$ ]] || fail "instance '$IA'"
[ "$IA" != "$IB" ] && [ "$IA" != "$IC" ] && [ "$IB" != "$IC" ] || fail "instances repeat: $IA $IB $IC"
pass "trit /props: sha256 = sha256sum, size, build $VERSION+$COMMIT, numerics, kernels, threads, distinct instances"

# --- /v1/models meta: llama-server's fields (the same figures for the same file) + sha256 ---
[ "$(get "$A/v1/models" "$TMP/ma.json" "${AUTH[@]}")" = 200 ] || fail "trit /v1/models"
[ "$(get "$L/v1/models" "$TMP/ml.json")" = 200 ] || fail "llama-server /v1/models"
[ "$(get "$L/props" "$TMP/pl.json")" = 200 ] || fail "llama-server /props"
m() { jget "$1" "d['data'][0]['meta']['$2']"; }
[ "$(m "$TMP/ma.json" sha256)" = "$SHA" ] || fail "/v1/models sha256"
[ "$(m "$TMP/ma.json" file_size)" = "$SIZE" ] || fail "/v1/models file_size"
for f in n_vocab n_ctx_train n_embd n_params size; do
  [ "$(m "$TMP/ma.json" $f)" = "$(m "$TMP/ml.json" $f)" ] ||
    fail "meta.$f: trit $(m "$TMP/ma.json" $f), llama-server $(m "$TMP/ml.json" $f)"
done
[ "$(jget "$TMP/ml.json" 'd["data"][0]["owned_by"]')" = llamacpp ] || fail "llama-server owned_by"
[ "$(jget "$TMP/ma.json" 'd["data"][0]["owned_by"]')" = trit ] || fail "trit owned_by"
pass "/v1/models meta: n_vocab n_ctx_train n_embd n_params size as llama-server's, plus sha256"

# --- system_fingerprint: every reply and stream chunk, as /props says ---
FP=$(t "$TMP/pa.json" system_fingerprint)
[ "$FP" = "trit-$VERSION+$COMMIT-$(t "$TMP/pa.json" kernels)-exact" ] || fail "fingerprint '$FP'"
[ "$FP" != "$(t "$TMP/pb.json" system_fingerprint)" ] || fail "fast numerics, same fingerprint"
curl -s "$A/v1/completions" "${AUTH[@]}" -d '{"prompt":"In the","max_tokens":3,"temperature":0}' >"$TMP/c.json"
[ "$(jget "$TMP/c.json" 'd["system_fingerprint"]')" = "$FP" ] || fail "completion fingerprint: $(cat "$TMP/c.json")"
curl -s "$A/v1/chat/completions" "${AUTH[@]}" -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":3,"temperature":0}' >"$TMP/ch.json"
[ "$(jget "$TMP/ch.json" 'd["system_fingerprint"]')" = "$FP" ] || fail "chat fingerprint"
curl -sN "$A/v1/chat/completions" "${AUTH[@]}" -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0,"stream":true}' |
  sed -n 's/^data: //p' | grep -v '^\[DONE\]' >"$TMP/chunks"
[ -s "$TMP/chunks" ] || fail "no stream chunks"
python3 - "$TMP/chunks" "$FP" <<'PY' || fail "a stream chunk without the fingerprint"
import json, sys
fp = sys.argv[2]
chunks = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert chunks and all(c.get("system_fingerprint") == fp for c in chunks), chunks
PY
pass "system_fingerprint $FP on replies and every stream chunk"

# --- trit doctor --url: the normalized identity and its digest ---
"$TRIT" doctor --url "$A" >"$TMP/d.out" 2>&1 && fail "doctor without the key should fail"
grep -q '401' "$TMP/d.out" || fail "doctor without the key: $(cat "$TMP/d.out")"
ident() { "$TRIT" doctor --url "$@" --json >"$TMP/id.json" || fail "doctor --url $*"; }
ident "$A/v1" --api-key-file "$KEYFILE"
cp "$TMP/id.json" "$TMP/ida.json"
[ "$(jget "$TMP/ida.json" 'd["engine"]')" = trit ] || fail "engine A"
[ "$(jget "$TMP/ida.json" 'd["model_sha256"]')" = "$SHA" ] || fail "identity sha256"
[ "$(jget "$TMP/ida.json" 'd["model_size"]')" = "$SIZE" ] || fail "identity size"
[ "$(jget "$TMP/ida.json" 'd["instance"]')" = "$IA" ] || fail "identity instance"
[ "$(jget "$TMP/ida.json" 'd["url"]')" = "$A" ] || fail "identity url"
[ "$(jget "$TMP/ida.json" '" ".join(d["reported"])')" = "/props /v1/models" ] || fail "reported"
ident "$B" && cp "$TMP/id.json" "$TMP/idb.json"
ident "$C" && cp "$TMP/id.json" "$TMP/idc.json"
ident "$L" && cp "$TMP/id.json" "$TMP/idl.json"
[ "$(jget "$TMP/idl.json" 'd["engine"]')" = llama.cpp ] || fail "llama-server engine: $(cat "$TMP/idl.json")"
BI=$(jget "$TMP/pl.json" 'd["build_info"]')
[ -n "$BI" ] && [ "$(jget "$TMP/idl.json" 'd["build"]')" = "$BI" ] || fail "llama-server build"
[ "$(jget "$TMP/idl.json" 'd["system_fingerprint"]')" = "$BI" ] || fail "llama-server fingerprint"
curl -s "$L/v1/completions" -d '{"prompt":"In the","max_tokens":2,"temperature":0}' >"$TMP/lc.json"
[ "$(jget "$TMP/lc.json" 'd["system_fingerprint"]')" = "$BI" ] || fail "llama-server replies' fingerprint is not its build_info"
[ "$(jget "$TMP/idl.json" 'd["n_vocab"]')" = 2048 ] || fail "llama-server n_vocab"
dg() { jget "$1" 'd["digest"]'; }
[ "$(dg "$TMP/ida.json")" = "$(dg "$TMP/idc.json")" ] || fail "same build, model, numerics: digests differ"
[ "$(dg "$TMP/ida.json")" != "$(dg "$TMP/idb.json")" ] || fail "exact vs fast: same digest"
[ "$(dg "$TMP/ida.json")" != "$(dg "$TMP/idl.json")" ] || fail "trit vs llama.cpp: same digest"
"$TRIT" doctor --url "$L" >"$TMP/d.txt" || fail "doctor --url (text)"
grep -q '^engine *llama.cpp$' "$TMP/d.txt" && grep -q '^digest *[0-9a-f]\{16\}$' "$TMP/d.txt" || fail "doctor text: $(cat "$TMP/d.txt")"
"$TRIT" doctor --url "http://127.0.0.1:$(free_port)" >/dev/null 2>&1 && fail "doctor on a closed port should fail"
rc=0
"$TRIT" doctor --json >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "doctor --json without --url: exit $rc, want 2 (usage)"
pass "doctor --url: engines recognized, digest equal for a restart, different for numerics/engine"
