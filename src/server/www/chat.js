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

  // Send the conversation and stream the reply into the page.
  async function send(text) {
    history.push({ role: 'user', content: text });
    addMessage('user').textContent = text;
    const body = addMessage('assistant');
    body.classList.add('streaming');
    const view = replyView(body);
    scrollDown();
    controller = new AbortController();
    setState('streaming', 'waiting for the first token…');
    const t0 = performance.now();
    let tFirst = 0, tLast = 0, nTok = 0, usage = null, finish = null, reply = '', fault = null;
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST', headers: headers(), body: JSON.stringify(requestBody()),
        signal: controller.signal,
      });
      if (res.status === 401) {
        history.pop();
        body.parentNode.remove();
        waitingForKey = text;
        askForKey('Enter the API key; the message is sent once the key works.');
        return;
      }
      if (!res.ok) throw new Error(await errorText(res));
      for await (const data of events(res, controller.signal)) {
        if (data === '[DONE]') break;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message || 'the server ended the reply with an error');
        if (j.usage) usage = j.usage;
        const ch = j.choices && j.choices[0];
        if (!ch) continue;
        const lps = ch.logprobs && ch.logprobs.content ? ch.logprobs.content : [];
        const piece = ch.delta && typeof ch.delta.content === 'string' ? ch.delta.content : '';
        if (lps.length || piece) {
          tLast = performance.now();
          if (!tFirst) tFirst = tLast;
          nTok += lps.length;
        }
        view.add(piece, lps);
        reply += piece;
        if (ch.finish_reason) finish = ch.finish_reason;
        if (nTok) $('status').textContent = nTok + ' tokens…';
        scrollDown();
      }
    } catch (e) {
      if (e.name !== 'AbortError') fault = e.message;
    }
    body.classList.remove('streaming');
    controller = null;
    history.push({ role: 'assistant', content: reply });
    const n = usage ? usage.completion_tokens : nTok;
    const secs = tLast > tFirst ? (tLast - tFirst) / 1000 : 0;
    const rate = secs > 0 && n > 1 ? ((n - 1) / secs).toFixed(1) + ' tokens/s' : '';
    const parts = [n + ' tokens', rate, tFirst ? 'first token after ' + Math.round(tFirst - t0) + ' ms' : '',
      finish ? 'finish: ' + finish : ''].filter(Boolean);
    if (fault) {
      const err = document.createElement('div');
      err.className = 'error';
      err.textContent = fault;
      body.parentNode.append(err);
      setState('error', 'error: ' + fault);
    } else if (!finish) {
      const note = document.createElement('div');
      note.className = 'note';
      note.textContent = 'stopped';
      body.parentNode.append(note);
      setState('stopped', 'stopped · ' + parts.join(' · '));
    } else {
      setState('done', parts.join(' · '));
    }
    $('rate').textContent = rate;
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
      history = [];
      $('messages').replaceChildren();
      setState('idle', '');
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
