#!/usr/bin/env bash
# 67_prefix_cache — the prompt cache changes no byte (issue 22 item 1): multi-turn
# conversations (system prompt + 6 turns, each turn resending the whole history, as chat
# clients do) on both routes, streamed and not, with logprobs, two conversations at once, a
# sampled one (seeded), one with "cache_prompt": false, one that lets the server replay each
# reply while idle (prompt + reply kept as prefill cells, so the next turn takes the reply
# too) and an echo + logprobs completion over a cached prefix, against
#   cold:   --cache-mib 0 (every prompt from position 0),
#   cached: the default cache, and
#   tiny:   --cache-mib 1 (entries evicted all the time, hits on what is left),
# all with --batch 96 so prompts cross prefill chunk boundaries (and the 64-row tiled
# attention) at every turn, on a Q4_K_M model (repacked group-of-4 gemm rows: the strictest
# reuse rule; also with the tiny cache) and a bitnet TQ2_0 one. Every reply's bytes (content, logprobs, finish, usage;
# streamed chunks in order) must equal the cold server's, and /metrics must show hits and
# reused and replayed tokens (the tiny cache: evictions too), so a cache that silently does
# nothing fails.
source "$(dirname "$0")/lib.sh"

F16=$(tiny_model llama f16)
Q4KM="$TRIT_TEST_TMP/models/tiny-llama-q4_k_m.gguf"
(
  flock 8
  [ -s "$Q4KM" ] || { "$TRIT" quantize "$F16" "$Q4KM.tmp" Q4_K_M >/dev/null && mv "$Q4KM.tmp" "$Q4KM"; }
) 8>"$Q4KM.lock"
[ -s "$Q4KM" ] || fail "quantize Q4_K_M"
TQ2=$(tiny_model bitnet tq2_0)

# chat.py URL OUT WAIT: the conversations, one canonical line per reply (sorted); WAIT=1: before
# each of its turns, chat-a waits until the server has replayed a finished reply (the idle
# replay, /metrics), so its next turn can take the reply's cells
cat >"$TMP/chat.py" <<'PY'
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
url, out, wait = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
SYSTEM = " ".join("Rule %d: you are a terse assistant for a ternary inference engine; answer in "
                  "one line, never repeat the question, prefer numbers to words." % i
                  for i in range(12))  # ~300 tokens: 4 conversations overflow --cache-mib 1
USER = ["What is a ternary weight?", "And how many bits does it take?",
        "Why does the prefill dominate the time to first token in a chat?",
        "Name one thing that makes a reply change with the cache state.",
        "Summarize the conversation so far in five words.", "Thanks, goodbye."]

def post(path, body):
    q = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(q, timeout=120)

def strip(d):  # what must not differ: everything but ids and times
    return {k: v for k, v in d.items() if k not in ("id", "created", "system_fingerprint")}

def call(path, body):
    """(reply text, canonical record): a stream's chunks in order, or the final body."""
    with post(path, body) as f:
        if not body.get("stream"):
            d = json.load(f)
            c = d["choices"][0]
            text = c["message"]["content"] if "message" in c else c["text"]
            return text, json.dumps(strip(d), sort_keys=True)
        chunks, text = [], ""
        for line in f:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            d = json.loads(line[6:])
            chunks.append(strip(d))
            for c in d.get("choices", []):
                text += (c.get("delta") or {}).get("content") or c.get("text") or ""
        return text, json.dumps(chunks, sort_keys=True)

def replayed():
    with urllib.request.urlopen(url + "/metrics", timeout=60) as f:
        for line in f.read().decode().splitlines():
            if line.startswith("trit_prompt_cache_replayed_tokens_total "):
                return int(line.split()[1])
    return 0

def wait_replay(seen):  # an event, with a generous deadline (never a fixed sleep)
    for _ in range(1200):
        n = replayed()
        if n > seen:
            return n
        time.sleep(0.05)
    sys.exit("no idle replay within 60 s")

def conversation(name, route, extra):
    recs, hist, seen = [], [], 0
    for t, u in enumerate(USER):
        if wait and name == "chat-a" and t > 0:
            seen = wait_replay(seen)
        body = dict({"max_tokens": 12 + 3 * t, "temperature": 0, "stream": t % 2 == 1}, **extra)
        if route == "chat":
            hist.append({"role": "user", "content": u})
            body.update({"messages": [{"role": "system", "content": SYSTEM}] + hist,
                         "logprobs": True, "top_logprobs": 3})
            text, rec = call("/v1/chat/completions", body)
            hist.append({"role": "assistant", "content": text})
        else:
            hist.append("User: " + u + "\nAssistant:")
            body.update({"prompt": SYSTEM + "\n" + "".join(hist), "logprobs": 3})
            text, rec = call("/v1/completions", body)
            hist[-1] += text + "\n"
        recs.append("%s/%d %s" % (name, t, rec))
    if route == "completion":  # prompt logprobs over a prefix the cache holds
        body = {"prompt": SYSTEM + "\n" + "".join(hist), "max_tokens": 4, "temperature": 0,
                "echo": True, "logprobs": 2}
        recs.append("%s/echo %s" % (name, call("/v1/completions", body)[1]))
    return recs

convs = [("chat-a", "chat", {}), ("chat-b", "chat", {"temperature": 0.8, "seed": 7}),
         ("comp-a", "completion", {}), ("chat-nocache", "chat", {"cache_prompt": False})]
with ThreadPoolExecutor(2) as ex:  # two conversations at once
    res = [r for rs in ex.map(lambda c: conversation(*c), convs) for r in rs]
with open(out, "w") as f:
    f.write("\n".join(sorted(res)) + "\n")
PY

# metric FILE NAME: the value of a series without labels
metric() { awk -v n="$2" '$1 == n { print $2 }' "$1"; }

# run MODEL NAME [serve args...] -> $TMP/NAME.txt, $TMP/NAME.metrics
run() {
  local model="$1" name="$2"; shift 2
  local port; port=$(free_port)
  start_trit_serve "$model" "$port" --slots 2 --batch 96 "$@"
  local wait=1; [ "$*" = "--cache-mib 0" ] && wait=0
  python3 "$TMP/chat.py" "http://127.0.0.1:$port" "$TMP/$name.txt" "$wait" || fail "$name: client failed"
  curl -sf "http://127.0.0.1:$port/metrics" >"$TMP/$name.metrics" || fail "$name: /metrics"
  kill "${_pids[-1]}"; wait "${_pids[-1]}" 2>/dev/null || true
}

for m in q4km tq2; do
  model=$Q4KM; [ "$m" = tq2 ] && model=$TQ2
  run "$model" "$m-cold" --cache-mib 0
  run "$model" "$m-cached"
  tiny=; [ "$m" = q4km ] && tiny=tiny # eviction on the strictest model only: seconds count
  [ -n "$tiny" ] && run "$model" "$m-tiny" --cache-mib 1
  n=$(wc -l <"$TMP/$m-cold.txt")
  [ "$n" -eq 25 ] || fail "$m: $n replies recorded, expected 25"
  [ "$(metric "$TMP/$m-cold.metrics" trit_prompt_cache_lookups_total)" = 0 ] ||
    fail "$m: --cache-mib 0 looked prompts up"
  for v in cached $tiny; do
    cmp -s "$TMP/$m-cold.txt" "$TMP/$m-$v.txt" ||
      fail "$m: $v replies differ from cold: $(diff "$TMP/$m-cold.txt" "$TMP/$m-$v.txt" |
        awk '/^[<>]/ { print $2 }' | sort -u | head -6 | tr '\n' ' ')"
    hits=$(metric "$TMP/$m-$v.metrics" trit_prompt_cache_hits_total)
    reused=$(metric "$TMP/$m-$v.metrics" trit_prompt_cache_reused_tokens_total)
    [ "${hits:-0}" -gt 0 ] && [ "${reused:-0}" -gt 0 ] || fail "$m $v: no cache hits ($hits, $reused tokens)"
    replayed=$(metric "$TMP/$m-$v.metrics" trit_prompt_cache_replayed_tokens_total)
    [ "${replayed:-0}" -gt 0 ] || fail "$m $v: no reply replayed"
    pass "$m $v: 25 replies byte-identical to cold, $hits hits, $reused tokens reused, $replayed replayed"
  done
  [ -n "$tiny" ] || continue
  ev=$(metric "$TMP/$m-tiny.metrics" trit_prompt_cache_evictions_total)
  [ "${ev:-0}" -gt 0 ] || fail "$m tiny: --cache-mib 1 evicted nothing"
  pass "$m tiny: $ev evictions"
done
