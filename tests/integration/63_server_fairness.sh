#!/usr/bin/env bash
# 63_server_fairness — a 200-connection trickle attack on trit serve and on trit shadow at once
# (issue 23 item 3), loopback only, bounded in count (200 per server) and time (~20 s; the
# loop ends when every attacker is dropped, at most 120 s):
#  - 100 connections per server trickle their request headers one byte a second (MHD's
#    inactivity timeout never fires); 100 send headers and all but one byte of a 1 MiB body,
#    then nothing (64 of them used to fill the 64 MiB body budget to the byte: every other
#    POST got 503 until MHD's 120 s inactivity timeout);
#  - the attackers come from 127.0.0.2: meanwhile a client on 127.0.0.1 keeps getting 200s
#    from both servers (one peer holds at most a quarter of the body budget);
#  - two honest clients on slow links (10-12 s uploads at 60 and 250 KB/s) are not cut: the one
#    within --max-body gets 200, the one over it (chunked: no Content-Length to refuse early)
#    its 413 at the end (its bytes after the refusal still count for the minimum rate);
#  - the servers drop every attacker (absolute header deadline; minimum body rate): the test
#    observes each socket being closed by the server, it does not assume a speed.
source "$(dirname "$0")/lib.sh"
M=$(tiny_model bitnet tq2_0)
PS=$(free_port)
start_trit_serve "$M" "$PS" --slots 2
PX=$(free_port)
"$TRIT" shadow --listen "127.0.0.1:$PX" --primary "http://127.0.0.1:$PS" \
  --candidate "http://127.0.0.1:$PS" --ledger "$TMP/fair.jsonl" --quiet >"$TMP/shadow.log" 2>&1 &
_pids+=($!)
wait_http "http://127.0.0.1:$PX/health" 60 || { cat "$TMP/shadow.log"; fail "shadow did not start"; }

python3 - "$PS" "$PX" <<'PY' || fail "trickle attack: see above"
import http.client, json, select, socket, sys, threading, time
ports = {"serve": int(sys.argv[1]), "shadow": int(sys.argv[2])}
N = 100  # per kind and server: 200 connections per server

def attacker(port):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s

socks = []  # (server, kind, socket)
for name, port in ports.items():
    for i in range(N):
        s = attacker(port)
        s.send(b"POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append((name, "headers", s))
    for i in range(N):
        s = attacker(port)
        s.setblocking(True)  # the whole first chunk goes in (the server reads it)
        s.settimeout(60)
        s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1048576\r\n\r\n" + b"x" * 1048575)
        s.setblocking(False)
        socks.append((name, "body", s))
print(f"  {len(socks)} attacker connections open from 127.0.0.2")

def slow_upload(port, body, rate, out, chunked=False):
    """An honest client on a slow link: body at `rate` bytes/s (well above the minimum);
    chunked: no Content-Length, so a body over the limit is only known as it arrives."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    size = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body)
    s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\n" + size + b"\r\n\r\n")
    try:
        step = rate // 10
        for i in range(0, len(body), step):
            part = body[i:i + step]
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            time.sleep(0.1)
        if chunked:
            s.sendall(b"0\r\n\r\n")
        out.append(s.makefile("rb").readline().split()[1].decode())
    except OSError as e:
        out.append(f"cut ({e.__class__.__name__})")
    s.close()

fits = json.dumps({"content": "slow " * 120000}).encode()       # ~600 KB: 200
too_big = json.dumps({"content": "slow " * 600000}).encode()    # ~3 MB: 413 at the end
slow = {"fits": [], "too_big": []}
uploads = [threading.Thread(target=slow_upload, args=(ports["serve"], fits, 60000, slow["fits"])),
           threading.Thread(target=slow_upload, args=(ports["serve"], too_big, 250000, slow["too_big"], True))]
[t.start() for t in uploads]

# The innocent client's request may wait its turn on a loaded machine: 30 s, not a speed, is
# its bound; a server that starves it under the attack never answers, or answers 503.
def victim(name, port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/tokenize", body=json.dumps({"content": "hello there " * 25}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status

# The loop ends on the event (every attacker seen closed by the server); 120 s, eight times
# the 15 s header deadline, only bounds a server that never drops them.
LIMIT = 120
t0 = time.time()
served = {n: 0 for n in ports}
closed_at = {}
while time.time() - t0 < LIMIT and len(closed_at) < len(socks):
    for name, port in ports.items():  # the innocent client, once a second per server
        st = victim(name, port)
        if st != 200:
            sys.exit(f"FAIL: {name} answered the innocent client {st} during the attack "
                     f"({time.time() - t0:.1f} s in)")
        served[name] += 1
    for k, (name, kind, s) in enumerate(socks):  # a header byte each; notice closed sockets
        if k in closed_at:
            continue
        try:
            r, _, _ = select.select([s], [], [], 0)
            if r and s.recv(65536) == b"":
                raise ConnectionResetError
            if kind == "headers":
                s.send(b"a")
        except (ConnectionResetError, BrokenPipeError, OSError):
            closed_at[k] = time.time() - t0
    time.sleep(1)
[t.join() for t in uploads]
if slow != {"fits": ["200"], "too_big": ["413"]}:
    sys.exit(f"FAIL: slow honest uploads (10-12 s each, during the attack): {slow} (want 200 and 413)")
print("  slow honest uploads during the attack: 600 KB at 60 KB/s -> 200, 3 MB chunked at 250 KB/s -> 413")
left = [(socks[k][0], socks[k][1]) for k in range(len(socks)) if k not in closed_at]
if left:
    sys.exit(f"FAIL: {len(left)} attackers still connected after {LIMIT} s, e.g. {left[:3]}")
for name in ports:
    for kind in ("headers", "body"):
        ts = [closed_at[k] for k, (n, kd, _) in enumerate(socks) if n == name and kd == kind]
        print(f"  {name}: {kind} tricklers all dropped by {max(ts):.1f} s")
print(f"  innocent client: {served['serve']} + {served['shadow']} requests answered 200 during the attack")
PY
curl -sf -o /dev/null "http://127.0.0.1:$PS/health" && curl -sf -o /dev/null "http://127.0.0.1:$PX/health" ||
  fail "a server is gone after the attack"
pass "200-connection trickle attack on serve and shadow: other clients served throughout, every attacker dropped"
