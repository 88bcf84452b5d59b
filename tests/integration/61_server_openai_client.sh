#!/usr/bin/env bash
# 61_server_openai_client — conformance with a client nobody here wrote: the official `openai`
# npm package (pinned, installed into a cache outside the repo) drives trit serve through
# chat, completions, streaming, logprobs and error handling (openai/client_test.mjs).
source "$(dirname "$0")/lib.sh"
OPENAI_VERSION=${OPENAI_VERSION:-5.7.0} # 6.x/7.x need node >= 22
NPM_DIR=${TRIT_NPM_DIR:-${TRIT_CACHE:-$HOME/.cache/trit}/npm}
command -v node >/dev/null || fail "node is required (apt-get install nodejs npm)"
mod="$NPM_DIR/node_modules/openai"
if [ "$(node -p "try{require('$mod/package.json').version}catch(e){''}" 2>/dev/null)" != "$OPENAI_VERSION" ]; then
  mkdir -p "$NPM_DIR"
  (flock 9; npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error "openai@$OPENAI_VERSION" >&2) 9>"$NPM_DIR/.lock" ||
    fail "npm install openai@$OPENAI_VERSION failed"
fi

MODEL=$(tiny_model llama f32)
PORT=$(free_port)
KEY=k-$RANDOM
start_trit_serve "$MODEL" "$PORT" --api-key "$KEY"
OPENAI_MODULE="$mod" node "$(dirname "$0")/openai/client_test.mjs" "http://127.0.0.1:$PORT" "$KEY" ||
  fail "openai client checks failed (server log: $(tail -5 "$TMP"/trit-serve-*.log))"
pass "official openai@$OPENAI_VERSION client"
