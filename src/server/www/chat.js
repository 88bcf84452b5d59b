// chat.js — trit serve's chat page (GET /). Talks only to its own server: /props for the
// identity shown in the header, /v1/chat/completions (streamed, with per-token logprobs) for
// replies. Every text that came from a prompt, a reply or the server is put in the page with
// textContent, never parsed as HTML. The API key, when the server wants one, lives in a
// variable of this script only: never in localStorage, a cookie or the URL.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  let apiKey = '';        // asked for after a 401; this page's memory only
  let history = [];       // [{role, content}] of this chat, resent every turn
  let controller = null;  // AbortController of the reply being streamed
  let waitingForKey = null; // the message to send once a key is entered
  let chatNo = 0;         // which chat this is: "New chat" starts the next one

  // The page's state, on <body data-state>: loading, idle, needs-key, checking-key,
  // streaming, done, stopped, error. Tests (and CSS) watch it instead of timing anything.
  function setState(s, text) {
    document.body.dataset.state = s;
    if (text !== undefined) $('status').textContent = text;
    const busy = s === 'streaming';
    $('send').disabled = busy;
    $('stop').disabled = !busy;
  }

  function headers() {
    const h = { 'Content-Type': 'application/json' };
    if (apiKey) h.Authorization = 'Bearer ' + apiKey;
    return h;
  }

  // A 401 means the server has a key this page does not: show the key box.
  function askForKey(why) {
    $('keyform').hidden = false;
    setState('needs-key', why);
    $('apikey').focus();
  }

  // The error message of an OpenAI error body, or the HTTP status.
  async function errorText(res) {
    try {
      const j = await res.json();
      if (j && j.error && j.error.message) return 'HTTP ' + res.status + ': ' + j.error.message;
    } catch (e) { /* not JSON */ }
    return 'HTTP ' + res.status;
  }

  // /props: the model, its chat template, the context, the build (llama-server's shape plus
  // trit's "trit" object).
  async function loadProps() {
    let res;
    try {
      res = await fetch('/props', { headers: headers(), cache: 'no-store' });
    } catch (e) {
      setState('error', 'cannot reach the server: ' + e.message);
      return false;
    }
    if (res.status === 401) {
      askForKey(apiKey ? 'That key was refused; enter the right one.' : 'Enter the API key.');
      return false;
    }
    if (!res.ok) {
      setState('error', await errorText(res));
      return false;
    }
    const p = await res.json();
    const t = p.trit || {};
    $('model').textContent = p.model_alias || '?';
    $('template').textContent = t.chat_template_name || p.chat_template_name || '?';
    const dgs = p.default_generation_settings || {};
    $('nctx').textContent = String(dgs.n_ctx || t.n_ctx || '?') + ' tokens, ' +
      String(p.total_slots || '?') + ' slots';
    $('build').textContent = (p.build_info || '?') + (t.kernels ? ' · ' + t.kernels : '') +
      (t.numerics ? ' · ' + t.numerics : '');
    $('keyform').hidden = true;
    return true;
  }

  // One message in the list: a role label and a body; the body is filled by the caller.
  function addMessage(role) {
    const div = document.createElement('div');
    div.className = 'msg ' + role;
    const who = document.createElement('div');
    who.className = 'role';
    who.textContent = role;
    const body = document.createElement('div');
    body.className = 'body';
    div.append(who, body);
    $('messages').append(div);
    return body;
  }

  function scrollDown() {
    const m = $('messages');
    m.scrollTop = m.scrollHeight;
  }

  // The request body from the form: sampling on unless temperature is 0; a seed only when
  // one is given; logprobs with 5 alternatives for the hover; usage at the end of the stream.
  function requestBody() {
    const msgs = [];
    const sys = $('system').value;
    if (sys.trim()) msgs.push({ role: 'system', content: sys });
    const body = {
      messages: msgs.concat(history),
      stream: true,
      stream_options: { include_usage: true },
      logprobs: true,
      top_logprobs: 5,
    };
    const num = (id) => {
      const v = $(id).value.trim();
      return v === '' ? null : Number(v);
    };
    const temp = num('temperature'), topP = num('top_p'), seed = num('seed'), max = num('max_tokens');
    if (temp !== null) body.temperature = temp;
    if (topP !== null) body.top_p = topP;
    if (seed !== null) body.seed = seed;
    if (max !== null) body.max_tokens = max;
    return body;
  }

  // The server-sent events of a stream, one parsed "data:" payload at a time.
  async function* events(res, signal) {
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = ev.split('\n').filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        if (data) yield data;
      }
      if (signal.aborted) break;
    }
  }

  // A reply being shown: a span per streamed piece of text, each carrying the logprobs of
  // the tokens that produced it (a token whose text the server held back, e.g. a possible
  // stop string or half a UTF-8 character, joins the next piece's span).
  function replyView(body) {
    let pending = [];
    return {
      add(text, lps) {
        pending = pending.concat(lps || []);
        if (!text) return;
        const span = document.createElement('span');
        span.className = 'tok';
        span.textContent = text;
        span.lp = pending;
        pending = [];
        body.append(span);
      },
    };
  }

  // Read a streamed reply into view, counting into st: tokens (one logprobs entry each),
  // the time of the first and last, usage and finish reason when the server sends them.
  async function readStream(res, view, st, signal) {
    for await (const data of events(res, signal)) {
      if (data === '[DONE]') break;
      const j = JSON.parse(data);
      if (j.error) throw new Error(j.error.message || 'the server ended the reply with an error');
      if (j.usage) st.usage = j.usage;
      const ch = j.choices && j.choices[0];
      if (!ch) continue;
      const lps = ch.logprobs && ch.logprobs.content ? ch.logprobs.content : [];
      const piece = ch.delta && typeof ch.delta.content === 'string' ? ch.delta.content : '';
      if (lps.length || piece) {
        st.tLast = performance.now();
        if (!st.tFirst) st.tFirst = st.tLast;
        st.nTok += lps.length;
      }
      view.add(piece, lps);
      st.reply += piece;
      if (ch.finish_reason) st.finish = ch.finish_reason;
      if (st.nTok) $('status').textContent = st.nTok + ' tokens…';
      scrollDown();
    }
  }

  // The reply is over (finished, stopped or failed): a note under it, the status line with
  // tokens, tokens/s (from the stream's timing) and time to the first token.
  function endReply(msg, st) {
    const n = st.usage ? st.usage.completion_tokens : st.nTok;
    const secs = st.tLast > st.tFirst ? (st.tLast - st.tFirst) / 1000 : 0;
    const rate = secs > 0 && n > 1 ? ((n - 1) / secs).toFixed(1) + ' tokens/s' : '';
    const parts = [n + ' tokens', rate,
      st.tFirst ? 'first token after ' + Math.round(st.tFirst - st.t0) + ' ms' : '',
      st.finish ? 'finish: ' + st.finish : ''].filter(Boolean);
    const note = (cls, text) => {
      const d = document.createElement('div');
      d.className = cls;
      d.textContent = text;
      msg.append(d);
    };
    if (st.fault) {
      note('error', st.fault);
      setState('error', 'error: ' + st.fault);
    } else if (!st.finish) {
      note('note', 'stopped');
      setState('stopped', 'stopped · ' + parts.join(' · '));
    } else {
      setState('done', parts.join(' · '));
    }
    $('rate').textContent = rate || '–';
  }

  // Send the conversation and stream the reply into the page. A 401 keeps the message until
  // a key is entered.
  async function send(text) {
    const chat = chatNo;
    history.push({ role: 'user', content: text });
    const asked = addMessage('user');
    asked.textContent = text;
    const body = addMessage('assistant');
    body.classList.add('streaming');
    scrollDown();
    const ctl = new AbortController();
    controller = ctl;
    setState('streaming', 'waiting for the first token…');
    const st = { t0: performance.now(), tFirst: 0, tLast: 0, nTok: 0, usage: null, finish: null,
      reply: '', fault: null };
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST', headers: headers(), body: JSON.stringify(requestBody()),
        signal: ctl.signal,
      });
      if (res.status === 401) {
        history.pop(); // the message waits for the key, shown again when it is sent
        asked.parentNode.remove();
        body.parentNode.remove();
        controller = null;
        waitingForKey = text;
        askForKey('Enter the API key; the message is sent once the key works.');
        return;
      }
      if (!res.ok) throw new Error(await errorText(res));
      await readStream(res, replyView(body), st, ctl.signal);
    } catch (e) {
      if (e.name !== 'AbortError') st.fault = e.message;
    }
    body.classList.remove('streaming');
    if (controller === ctl) controller = null;
    if (chat !== chatNo) return; // "New chat" while it streamed: this reply is gone
    history.push({ role: 'assistant', content: st.reply });
    endReply(body.parentNode, st);
  }

  // The tooltip: each token of the hovered span, its probability and the alternatives.
  function showTip(span, x, y) {
    const tip = $('tip');
    tip.replaceChildren();
    if (!span.lp || !span.lp.length) {
      tip.hidden = true;
      return;
    }
    for (const t of span.lp) {
      const row = document.createElement('div');
      row.className = 'tiprow';
      const head = document.createElement('div');
      head.className = 'tiphead';
      head.textContent = JSON.stringify(t.token) + '  logprob ' + fmt(t.logprob) +
        '  p ' + pct(t.logprob);
      row.append(head);
      for (const a of t.top_logprobs || []) {
        const alt = document.createElement('div');
        alt.className = 'alt' + (a.id === t.id ? ' chosen' : '');
        alt.textContent = JSON.stringify(a.token) + '  ' + fmt(a.logprob) + '  ' + pct(a.logprob);
        row.append(alt);
      }
      tip.append(row);
    }
    tip.hidden = false;
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.max(4, Math.min(x + 12, window.innerWidth - w - 4)) + 'px';
    tip.style.top = Math.max(4, y + 16 + h > window.innerHeight ? y - h - 8 : y + 16) + 'px';
  }
  const fmt = (v) => (typeof v === 'number' ? v.toFixed(4) : 'n/a');
  const pct = (v) => (typeof v === 'number' ? (100 * Math.exp(v)).toFixed(1) + '%' : 'n/a');

  function submitPrompt(ev) {
    if (ev) ev.preventDefault();
    const text = $('prompt').value;
    if (!text.trim() || controller) return;
    $('prompt').value = '';
    send(text);
  }

  async function submitKey(ev) {
    ev.preventDefault();
    apiKey = $('apikey').value.trim();
    $('apikey').value = '';
    setState('checking-key', 'Checking the key…');
    if (!(await loadProps())) return;
    setState('idle', 'Key accepted.');
    if (waitingForKey !== null) {
      const text = waitingForKey;
      waitingForKey = null;
      send(text);
    }
  }

  function wire() {
    $('input').addEventListener('submit', submitPrompt);
    $('prompt').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) submitPrompt(ev);
    });
    $('stop').addEventListener('click', () => {
      if (controller) controller.abort();
    });
    $('keyform').addEventListener('submit', submitKey);
    $('clear').addEventListener('click', () => {
      if (controller) controller.abort();
      controller = null;
      chatNo++;
      history = [];
      waitingForKey = null;
      $('messages').replaceChildren();
      $('tip').hidden = true;
      setState($('keyform').hidden ? 'idle' : 'needs-key', '');
    });
    $('messages').addEventListener('mouseover', (ev) => {
      const span = ev.target.closest && ev.target.closest('span.tok');
      if (span) showTip(span, ev.clientX, ev.clientY);
    });
    $('messages').addEventListener('mouseout', (ev) => {
      if (ev.target.closest && ev.target.closest('span.tok')) $('tip').hidden = true;
    });
  }

  wire();
  loadProps().then((ok) => { if (ok) setState('idle', ''); });
})();
