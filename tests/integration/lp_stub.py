#!/usr/bin/env python3
"""lp_stub.py PORT MODE — a loopback stand-in for an OpenAI-compatible server without echo
(like llama-server) for 74_ppl_http.sh: it answers /v1/models, /tokenize (ids = BOS 1 then
one id per byte, vocabulary 256) and /v1/completions (prompt as token ids, logprobs N,
logit_bias forcing a token) with a fixed made-up distribution, and misbehaves as MODE says:
  good      every reply well-formed; the forced token's logprob is the raw one
  garbage   every endpoint answers 200 with a body that is not JSON
  postbias  the forced token is reported with log-probability 0 (after logit_bias)
  short     after AFTER scoring requests, 3 alternatives where N were asked
  wrongid   after AFTER scoring requests, the reply is about another token
  hang      after AFTER scoring requests, no reply for 30 s
  vocab     /v1/models reports a vocabulary of 999 tokens
AFTER is $LP_STUB_AFTER (default 20)."""
import json
import math
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, MODE = int(sys.argv[1]), sys.argv[2]
AFTER = int(os.environ.get("LP_STUB_AFTER", "20"))
V = 256
state = {"scoring": 0}


def logprobs_after(prompt):
    """A fixed distribution depending on the prompt's length and last token."""
    seed = (len(prompt) * 31 + prompt[-1] * 7) % V
    logits = [-0.05 * ((i - seed) % V) for i in range(V)]
    m = max(logits)
    lse = m + math.log(sum(math.exp(x - m) for x in logits))
    return [x - lse for x in logits]


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, code, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if MODE == "garbage":
            return self.send(200, b"this is not json")
        if self.path.startswith("/v1/models"):
            meta = {"n_vocab": 999 if MODE == "vocab" else V}
            return self.send(200, {"object": "list", "data": [{"id": "stub", "meta": meta}]})
        return self.send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n) or b"{}")
        if MODE == "garbage":
            return self.send(200, b"<html>garbage</html>")
        if self.path == "/tokenize":
            ids = ([1] if req.get("add_special") else []) + [
                2 + b % (V - 2) for b in req.get("content", "").encode()
            ]
            return self.send(200, {"tokens": ids})
        if self.path != "/v1/completions":
            return self.send(404, {"error": {"message": "not found"}})
        if req.get("echo"):
            return self.send(400, {"error": {"message": "Only no echo is supported"}})
        state["scoring"] += 1
        late = state["scoring"] > AFTER
        if MODE == "hang" and late:
            time.sleep(30)
        prompt = req["prompt"]
        lp = logprobs_after(prompt)
        order = sorted(range(V), key=lambda i: (-lp[i], i))
        k = int(req.get("logprobs", 0))
        bias = {int(t): b for t, b in (req.get("logit_bias") or {}).items()}
        tok = max(range(V), key=lambda i: (lp[i] + bias.get(i, 0), -i))
        tok_lp = lp[tok]
        if MODE == "postbias" and bias:
            tok_lp = 0.0
        if MODE == "wrongid" and late:
            tok = (tok + 1) % V
        if MODE == "short" and late:
            k = min(k, 3)
        top = [{"id": i, "token": "t%d" % i, "logprob": lp[i]} for i in order[:k]]
        ent = {"id": tok, "token": "t%d" % tok, "logprob": tok_lp, "top_logprobs": top}
        return self.send(
            200,
            {
                "choices": [{"text": "t", "index": 0, "logprobs": {"content": [ent]},
                             "finish_reason": "length"}],
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": 1},
            },
        )


ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
