// dashboard.js — the live burn-in dashboard (parity/dashboard.h). Polls the JSON API next to
// this page every 2 s; builds every element with DOM calls and sets text with textContent
// only, so a prompt or reply holding markup shows as text. Charts are inline SVG made here.
'use strict';
(function () {
  const POLL_MS = 2000, PAGE = 25, SVGNS = 'http://www.w3.org/2000/svg';
  const state = { key: sessionStorage.getItem('trit-dash-key') || '', seen: '', offset: 0,
    epoch: -1, missId: -1, gateDirty: 0 };
  const $ = (id) => document.getElementById(id);

  // An element with a class and text (never HTML).
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  const pct = (x) => (x === null || x === undefined ? '–' : (100 * x).toFixed(2) + '%');
  const ms = (x) => (x === null || x === undefined ? '–' : x.toFixed(0));

  // GET api/NAME as JSON; a 401 shows the key form.
  async function api(name) {
    const headers = state.key ? { Authorization: 'Bearer ' + state.key } : {};
    const r = await fetch('api/' + name, { headers, cache: 'no-store' });
    if (r.status === 401) { $('keyform').hidden = false; throw new Error('API key needed'); }
    if (!r.ok) throw new Error('api/' + name + ': HTTP ' + r.status);
    return r.json();
  }

  function renderSummary(s) {
    $('rounds').textContent = s.rounds;
    $('compared').textContent = s.compared;
    $('exact-rate').textContent = pct(s.exact_rate);
    $('misses-count').textContent = s.misses + ' (' + s.ties + ' / ' + s.reals + ')';
    const last = s.last_ts ? new Date(s.last_ts * 1000).toISOString().replace('.000', '') : '–';
    $('status').textContent = s.ledgers.map((l) => l.path).join(', ') + ' · ' + s.records +
      ' records · last round ' + last + ' · updated ' + new Date().toLocaleTimeString();
  }

  function renderGate(g) {
    const body = $('gates').tBodies[0];
    body.replaceChildren();
    if (g.error) { $('gate-reason').hidden = false; $('gate-reason').textContent = g.error; return; }
    for (const r of g.gates) {
      const tr = el('tr');
      tr.dataset.gate = r.gate;
      tr.append(el('td', 'gate', r.gate), el('td', 'target', r.target), el('td', 'current', r.current),
        el('td', 'verdict ' + (r.verdict === 'PASS' ? 'pass' : 'fail'), r.verdict), el('td', 'why', r.why));
      body.append(tr);
    }
    const v = $('verdict');
    v.textContent = g.verdict;
    v.className = 'big ' + (g.verdict === 'GO' ? 'go' : 'nogo');
    $('gate-reason').hidden = !g.reason;
    $('gate-reason').textContent = g.reason ? 'REFUSED: ' + g.reason : '';
    $('gate-meta').textContent = '(as trit gate computes them · config ' + g.config + ' · ' +
      g.rounds + ' rounds)';
  }

  // A line chart of series [{cls, values, thin}] over n points; y from lo to hi; xl: the
  // labels of the first and last point.
  function chart(box, n, series, lo, hi, fmt, xl) {
    const W = 600, H = 220, L = 44, R = 8, T = 10, B = 22;
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img' });
    const x = (i) => L + (n > 1 ? (i * (W - L - R)) / (n - 1) : (W - L - R) / 2);
    const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo || 1));
    for (let k = 0; k <= 4; k++) {
      const v = lo + ((hi - lo) * k) / 4;
      s.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'axis' }));
      const t = svg('text', { x: 2, y: y(v) + 3, class: 'tick' });
      t.textContent = fmt(v);
      s.append(t);
    }
    (xl || []).forEach((label, k) => {
      const t = svg('text', { x: k ? W - R : L, y: H - 6, class: 'tick', 'text-anchor': k ? 'end' : 'start' });
      t.textContent = label;
      s.append(t);
    });
    for (const se of series) {
      let pts = '';
      se.values.forEach((v, i) => { if (v !== null && v !== undefined) pts += x(i) + ',' + y(v) + ' '; });
      if (!pts) continue;
      const cls = 'line ' + se.cls + (se.thin ? ' thin' : '');
      s.append(svg(pts.split(' ').length > 2 ? 'polyline' : 'circle',
        pts.split(' ').length > 2 ? { points: pts.trim(), class: cls }
          : { cx: pts.split(',')[0], cy: pts.split(',')[1].trim(), r: 3, class: cls }));
    }
    box.replaceChildren(s);
  }
  function legend(box, items) {
    box.replaceChildren(...items.map(([cls, text]) => el('span', cls, '— ' + text)));
  }

  function renderTrend(t) {
    const b = t.buckets, n = b.length;
    const hhmm = (ts) => new Date(ts * 1000).toISOString().slice(5, 16).replace('T', ' ') + 'Z';
    const xl = b.length ? [hhmm(t.t0), hhmm(t.t0 + t.width * n)] : [];
    const rates = b.map((x) => x.rate), noise = b.map((x) => x.noise_rate);
    const vals = rates.concat(noise).filter((v) => v !== null);
    const lo = Math.max(0, Math.min(0.9, ...vals) - 0.05);
    chart($('chart-exact'), n, [{ cls: 's-v2', values: rates }, { cls: 's-noise', values: noise }],
      lo, 1, pct, xl);
    legend($('legend-exact'), [['k-v2', 'gen-2 vs gen-1'], ['k-noise', 'noise lane (gen-1 vs gen-1)']]);
    const lat = ['p50_v1', 'p95_v1', 'p50_v2', 'p95_v2'].map((k) => b.map((x) => x[k]));
    const hi = Math.max(1, ...lat.flat().filter((v) => v !== null)) * 1.1;
    chart($('chart-lat'), n, [{ cls: 's-v1', values: lat[0] }, { cls: 's-v1', values: lat[1], thin: true },
      { cls: 's-v2', values: lat[2] }, { cls: 's-v2', values: lat[3], thin: true }], 0, hi, ms, xl);
    legend($('legend-lat'), [['k-v1', 'gen-1 p50 (dashed p95)'], ['k-v2', 'gen-2 p50 (dashed p95)']]);
    const body = $('cats').tBodies[0];
    body.replaceChildren();
    for (const c of t.categories) {
      const tr = el('tr');
      const bar = el('td', 'rate', pct(c.rate) + ' ');
      const sp = svg('svg', { class: 'spark', viewBox: '0 0 120 18', preserveAspectRatio: 'none' });
      const pts = c.series.map((v, i) => (v === null ? null :
        (n > 1 ? (i * 118) / (n - 1) + 1 : 60) + ',' + (17 - 16 * v))).filter((p) => p);
      if (pts.length) sp.append(svg('polyline', { points: pts.join(' ') }));
      const spark = el('td');
      spark.append(sp);
      tr.append(el('td', null, c.name), el('td', null, c.rounds), el('td', null, c.compared),
        el('td', null, c.exact), bar, spark);
      body.append(tr);
    }
  }

  function renderMisses(m) {
    const body = $('misses').tBodies[0];
    body.replaceChildren();
    for (const r of m.misses) {
      const tr = el('tr');
      tr.dataset.id = r.id;
      if (r.id === state.missId) tr.className = 'sel';
      const when = el('td', 'when', r.time.slice(5, 10) + ' ' + r.time.slice(11, 19));
      when.title = r.time;
      tr.append(when, el('td', null, r.round),
        el('td', null, r.prompt_id), el('td', null, r.category), el('td', null, r.bucket),
        el('td', r.tie ? 'tag-' + r.tie : null, r.tie || '–'));
      tr.addEventListener('click', () => openMiss(r.id));
      body.append(tr);
    }
    const tm = m.top_miss;
    $('top-miss').textContent = m.total + ' total' + (tm ? ' · top_miss ' + tm.prompt_id + ' (' +
      tm.misses + ', ' + pct(tm.share) + ')' : '');
    $('page').textContent = m.total ? (m.offset + 1) + '–' + (m.offset + m.misses.length) + ' of ' + m.total : '';
    $('newer').disabled = m.offset === 0;
    $('older').disabled = m.offset + m.misses.length >= m.total;
  }

  // The byte offset k of text (UTF-8) moved back to a character start; then the text before
  // it, the character at it and the rest.
  function splitAt(text, k) {
    const bytes = new TextEncoder().encode(text), dec = new TextDecoder();
    k = Math.max(0, Math.min(k, bytes.length));
    while (k > 0 && k < bytes.length && (bytes[k] & 0xc0) === 0x80) k--;
    let e = k + 1;
    while (e < bytes.length && (bytes[e] & 0xc0) === 0x80) e++;
    e = Math.min(e, bytes.length);
    return [dec.decode(bytes.subarray(0, k)), dec.decode(bytes.subarray(k, e)), dec.decode(bytes.subarray(e))];
  }
  function renderReply(pre, text, k) {
    const [head, at, tail] = splitAt(text || '', k);
    const mark = el('mark', at ? 'div' : 'div end', at);
    mark.id = pre.id + '-mark';
    pre.replaceChildren(el('span', 'head', head), mark, el('span', 'tail', tail));
  }
  function renderTop(table, side, label) {
    table.replaceChildren();
    if (!side || !side.top) return;
    const cap = el('caption', null, label + ' top-' + side.top.length + ' at the split');
    table.append(cap);
    const hdr = el('tr');
    hdr.append(el('th', null, 'token'), el('th', null, 'id'), el('th', null, 'logprob'));
    table.append(hdr);
    for (const t of side.top) {
      const tr = el('tr', t.id === side.id ? 'chosen' : null);
      tr.append(el('td', null, JSON.stringify(t.t)), el('td', null, t.id),
        el('td', null, typeof t.lp === 'number' ? t.lp.toFixed(4) : '–'));
      table.append(tr);
    }
  }

  async function openMiss(id) {
    state.missId = id;
    for (const tr of $('misses').tBodies[0].rows) tr.className = Number(tr.dataset.id) === id ? 'sel' : '';
    const m = await api('miss?id=' + id + '&epoch=' + state.epoch);
    $('miss-title').textContent = 'round ' + m.round + ' · ' + m.prompt_id + ' · ' + m.bucket +
      (m.tie ? ' (' + m.tie + ')' : '') + ' · first divergent byte ' + m.div_byte;
    renderReply($('reply-v1'), m.text_v1, m.div_byte);
    renderReply($('reply-v2'), m.text_v2, m.div_byte);
    const sp = m.split || {};
    renderTop($('top-v1'), sp.v1, 'gen-1');
    renderTop($('top-v2'), sp.v2, 'gen-2');
    const g = (x) => (typeof x === 'number' ? x.toFixed(4) : '–');
    $('miss-detail').textContent = 'common prefix ' + m.prefix_len + ' bytes · split at token ' +
      (m.div_token !== undefined ? m.div_token : m.div_token_v1) + ' · top-1 minus top-2: gen-1 ' +
      g(m.gap_v1) + ', gen-2 ' + g(m.gap_v2) + ' nats · latency ' + g(m.lat_v1) + ' s / ' + g(m.lat_v2) + ' s';
    document.body.dataset.missShown = String(id);
  }

  async function loadMisses() { renderMisses(await api('misses?offset=' + state.offset + '&limit=' + PAGE)); }

  // One poll: the summary, and everything else when it changed.
  async function poll() {
    try {
      const s = await api('summary');
      $('keyform').hidden = true;
      renderSummary(s);
      const sig = s.epoch + ':' + s.records;
      if (sig !== state.seen) {
        if (s.epoch !== state.epoch) { state.offset = 0; state.missId = -1; }
        state.epoch = s.epoch;
        renderTrend(await api('trend?buckets=40'));
        await loadMisses();
        state.seen = sig;
        state.gateDirty = 3;
        document.body.dataset.rounds = String(s.rounds);
      }
      // the server recomputes the gate at most every few seconds (a cached answer is cheap):
      // ask until it has caught up with the rounds, and a few times after any change
      if (state.gateDirty > 0 || state.gateRounds !== s.rounds) {
        state.gateDirty = Math.max(0, state.gateDirty - 1);
        const g = await api('gate');
        state.gateRounds = g.rounds;
        renderGate(g);
      }
    } catch (e) {
      $('status').textContent = String(e.message || e);
    }
    setTimeout(poll, POLL_MS);
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('keyform').addEventListener('submit', (ev) => {
      ev.preventDefault();
      state.key = $('key').value;
      sessionStorage.setItem('trit-dash-key', state.key);
      state.seen = '';
    });
    $('newer').addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE); loadMisses(); });
    $('older').addEventListener('click', () => { state.offset += PAGE; loadMisses(); });
    poll();
  });
})();
