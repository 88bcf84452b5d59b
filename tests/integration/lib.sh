# tests/integration/lib.sh — shared helpers for integration scripts (source it).
# Provides: $TRIT (the binary), $TMP (per-script temp dir), ref_bin NAME, free_port,
# tiny_model ARCH TYPE [extra mkmodel args...] (cached per test run), start_llama_server,
# start_trit_serve, wait_http URL, metric / wait_metric (a /metrics sample, awaited as an event),
# drop_client (a client that disconnects on an event), and a trap that kills every process
# started here.
set -euo pipefail
ROOT="${TRIT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
TRIT="${TRIT:-$ROOT/build/trit}"
TRIT_TEST_TMP="${TRIT_TEST_TMP:-/tmp/trit-test-$$}"
mkdir -p "$TRIT_TEST_TMP/models"
TMP="$(mktemp -d "$TRIT_TEST_TMP/$(basename "$0" .sh).XXXX")"
REF_DIR="${TRIT_REF_DIR:-${TRIT_CACHE:-$HOME/.cache/trit}/llama.cpp-${TRIT_NLC_VERSION:-3.22.1}}"
# TRIT_REF_SET=avx2|arm64|...: that reference build (build-<set>/), as trit_ref_path does; the
# aarch64 one (arm64) runs through binfmt_misc's qemu entry (scripts/setup --arm64)
REF_BIN="$REF_DIR/build${TRIT_REF_SET:+-$TRIT_REF_SET}/bin"
_pids=()

ref_bin() { echo "$REF_BIN/$1"; }

# On exit: stop every process started here, then free the disk: a passing script's $TMP goes
# (models made by a test run to gigabytes over the suite); a failing one keeps its logs and
# small files for reading, only its model files (*.gguf) are removed. TRIT_KEEP_TMP=1 keeps all.
cleanup() {
  local rc=$? p
  for p in "${_pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${_pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  if [ "${TRIT_KEEP_TMP:-0}" != 1 ]; then
    if [ "$rc" -eq 0 ]; then
      rm -rf "$TMP"
    else
      find "$TMP" -name '*.gguf' -size +1M -delete 2>/dev/null || true
    fi
  fi
  return "$rc"
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

# tiny_model ARCH TYPE [args...] -> prints the path; built once per test run (flock'd).
tiny_model() {
  local arch="$1" type="$2"; shift 2
  local tag; tag=$(printf '%s' "$*" | tr -c 'A-Za-z0-9_.-' '_')
  local out="$TRIT_TEST_TMP/models/tiny-$arch-$type${tag:+-$tag}.gguf"
  (
    flock 8
    if [ ! -s "$out" ]; then
      "$TRIT" mkmodel --arch "$arch" --preset tiny --type "$type" --seed 1 "$@" -o "$out.tmp" >&2 &&
        mv "$out.tmp" "$out"
    fi
  ) 8>"$out.lock"
  [ -s "$out" ] || fail "mkmodel $arch $type $*"
  echo "$out"
}

# wait_http URL [seconds] — until GET URL answers 200.
wait_http() {
  local url="$1" t="${2:-60}" i
  for ((i = 0; i < t * 10; i++)); do
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.1
  done
  return 1
}

# start_llama_server MODEL PORT [extra args] — reference server, 1 slot, no prompt cache.
start_llama_server() {
  local model="$1" port="$2"; shift 2
  "$(ref_bin llama-server)" -m "$model" --host 127.0.0.1 --port "$port" -np 1 --no-cache-prompt \
    -t "${LLAMA_THREADS:-1}" -c "${LLAMA_CTX:-2048}" --no-webui "$@" >"$TMP/llama-server-$port.log" 2>&1 &
  _pids+=($!)
  wait_http "http://127.0.0.1:$port/health" 120 || { tail -20 "$TMP/llama-server-$port.log" >&2; fail "llama-server did not start"; }
}

# start_trit_serve MODEL PORT [extra args]
start_trit_serve() {
  local model="$1" port="$2"; shift 2
  "$TRIT" serve "$model" --host 127.0.0.1 --port "$port" --threads "${TRIT_THREADS:-1}" "$@" >"$TMP/trit-serve-$port.log" 2>&1 &
  _pids+=($!)
  wait_http "http://127.0.0.1:$port/health" 60 || { tail -20 "$TMP/trit-serve-$port.log" >&2; fail "trit serve did not start"; }
}

# browser_test SCRIPT ARGS... — a page test (tests/browser/*.js) in headless Chromium through
# playwright-core; scripts/setup installs both, so their absence fails the test (a page test
# that skips on a fresh machine would prove nothing).
browser_test() {
  command -v node >/dev/null || fail "node not installed (scripts/setup installs it)"
  [ -x "${TRIT_CHROMIUM:-/usr/bin/chromium}" ] || fail "chromium not installed (scripts/setup installs it)"
  [ -f "${TRIT_CACHE:-$HOME/.cache/trit}/browser/node_modules/playwright-core/package.json" ] ||
    fail "playwright-core missing in ${TRIT_CACHE:-$HOME/.cache/trit}/browser (run scripts/setup)"
  node "$ROOT/tests/browser/$1" "${@:2}"
}

# metric URL NAME [curl args...] -> NAME's value in URL/metrics (NAME with its labels, as
# printed: 'trit_requests_total{route="/v1/completions",code="499"}'); 0 when absent.
metric() {
  local u="$1" n="$2"; shift 2
  curl -s -m 30 "$@" "$u/metrics" | awk -v n="$n" '$1 == n {v = $2} END {print v == "" ? 0 : v}'
}

# wait_metric URL NAME OP VALUE [seconds] — until NAME OP VALUE holds (OP: a
# test(1) integer operator: -eq -ge -le ...). The wait is for an event, so its deadline is
# generous (default 30 s): only a server that never gets there fails, a slow one does not.
wait_metric() {
  local u="$1" n="$2" op="$3" want="$4" t="${5:-30}" v i
  for ((i = 0; i < t * 20; i++)); do
    v=$(metric "$u" "$n")
    [ "${v%.*}" "$op" "$want" ] && return 0
    sleep 0.05
  done
  echo "wait_metric: $n is $v after $t s, want $op $want" >&2
  return 1
}

# drop_client PORT PATH BODY WHEN [reset] — POST BODY and then disconnect on an event, never on
# a timer: WHEN "data": after the first SSE data event arrived; "NAME>=N": once PORT's /metrics
# shows the sample NAME at N or more (e.g. trit_queue_depth>=3: this client is queued). Closes
# with FIN (a client that gave up), or with RST when "reset" is given (SO_LINGER 0: a reset
# connection). Exits non-zero when the event never comes (60 s), or the reply ends before it.
drop_client() {
  python3 - "$@" <<'PY'
import socket, sys, time, urllib.request
import struct
port, path, body, when = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), sys.argv[4]
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
deadline = time.time() + 60
if when == "data":
    buf = b""
    while b"data: " not in buf:
        chunk = s.recv(4096)
        if not chunk: sys.exit("drop_client: the reply ended before its first event: %r" % buf[:300])
        buf += chunk
else:
    name, want = when.split(">=")
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read().decode()
        v = [float(l.split()[1]) for l in text.splitlines() if l.split(" ")[0] == name]
        if v and v[0] >= float(want): break
        if time.time() > deadline: sys.exit(f"drop_client: {name} never reached {want} ({v})")
        time.sleep(0.05)
if sys.argv[5:] == ["reset"]:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
PY
}

# maxabs RECEIPT -> the largest rung-3/4 max-abs over a `trit ladder -o` receipt's prompts (the
# exactness tests: 42_avx2_exact, tests/arm64/10_exact)
maxabs() {
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = 0.0
for p in r["prompts"]:
    for x in p["rungs"]:
        if x["rung"] in (3, 4) and "max_abs" in x.get("metrics", {}):
            m = max(m, x["metrics"]["max_abs"])
print(m)
PY
}
