// tests/browser/chat.js — trit serve's chat page (GET /) in headless Chromium.
// Usage: node chat.js URL KEYED_URL OUTDIR   (the API key of KEYED_URL in $CHAT_KEY)
//   URL        a trit serve without a key (the tiny test model is fine)
//   KEYED_URL  a trit serve started with --api-key $CHAT_KEY
//   OUTDIR     where the screenshot goes; TRIT_UPDATE_DOCS_IMG=FILE also writes it to FILE
// What it proves: the page loads with its CSP and no console error or CSP violation; a
// greedy reply streamed into the page is byte-identical to the non-streamed
// /v1/chat/completions answer for the same messages and settings (two turns, so the history
// is resent); tokens/s and the chat template are shown; hovering a token shows its
// logprobs; Stop aborts the stream and the server counts the request as cancelled (499 in
// /metrics); markup in a prompt is shown as text, never parsed; inline script is refused by
// the CSP; a request the server refuses shows its error; against a keyed server the page asks
// for the key, keeps a message sent before it, refuses a wrong key, sends the message once
// the right one is entered, and stores the key nowhere. Every wait observes the page's data-state or the
// server's counters, never a sleep.
'use strict';
const fs = require('fs');
const path = require('path');
const { launch, newPage, pngColours, ok, fail, done } = require('./lib.js');

const [url, keyedUrl, outDir] = process.argv.slice(2);
const key = process.env.CHAT_KEY || '';
if (!url || !keyedUrl || !outDir || !key) fail('usage: CHAT_KEY=K node chat.js URL KEYED_URL OUTDIR');
const WAIT = 30000; // generous: the machine may be shared; nothing here is timed

const state = (page) => page.evaluate(() => document.body.dataset.state);
const waitState = (page, want) =>
  page.waitForFunction((w) => w.includes(document.body.dataset.state), want, { timeout: WAIT });

// The settings the page is given, and the same request made by node's fetch (not streamed).
const SETTINGS = { temperature: '0', top_p: '1', seed: '42', max_tokens: '12' };
async function direct(base, messages, headers) {
  const res = await fetch(base + '/v1/chat/completions', {
    method: 'POST',
    headers: Object.assign({ 'Content-Type': 'application/json' }, headers || {}),
    body: JSON.stringify({ messages, temperature: 0, top_p: 1, seed: 42, max_tokens: 12 }),
  });
  if (!res.ok) fail('direct request: HTTP ' + res.status + ' ' + (await res.text()));
  return (await res.json()).choices[0].message.content;
}

async function setForm(page, system) {
  await page.fill('#system', system);
  for (const [id, v] of Object.entries(SETTINGS)) await page.fill('#' + id, v);
}

// Type a message, send it, wait until the reply is over; the reply's text from the DOM.
async function say(page, text) {
  const n = await page.$$eval('#messages .msg.assistant', (a) => a.length);
  await page.fill('#prompt', text);
  await page.click('#send');
  // the new reply's end: a reply more than before, and the page out of its streaming state
  await page.waitForFunction((n0) => document.querySelectorAll('#messages .msg.assistant').length > n0 &&
    ['done', 'error', 'stopped'].includes(document.body.dataset.state), n, { timeout: WAIT });
  return page.evaluate(() => {
    const b = document.querySelectorAll('#messages .msg.assistant .body');
    return b.length ? b[b.length - 1].textContent : null;
  });
}

async function metric(base, re) {
  const t = await (await fetch(base + '/metrics')).text();
  const m = t.match(re);
  return m ? Number(m[1]) : 0;
}

// The page on the server without a key: identity, two greedy turns, hover, escaping, stop.
async function openServer(browser) {
  const page = await newPage(browser);
  const res = await page.goto(url + '/');
  const csp = res.headers()['content-security-policy'] || '';
  ok(res.status() === 200 && res.headers()['content-type'].startsWith('text/html'), 'GET / is the page');
  ok(/script-src 'self'/.test(csp) && /default-src 'none'/.test(csp) && !/unsafe/.test(csp),
    "the page carries a strict CSP: " + csp);
  await waitState(page, ['idle']);
  ok((await page.textContent('#template')) === 'chatml', 'the chat template in use is shown (chatml)');
  ok((await page.textContent('#model')).endsWith('.gguf'), 'the model is shown');
  ok(await page.evaluate(() => document.getElementById('temperature').value === '0.8'),
    'sampling is on by default (temperature 0.8)');

  // Two greedy turns: each reply equals the non-streamed answer to the same history.
  const system = 'You are <b>terse</b>.';
  await setForm(page, system);
  const q1 = 'Say something about ternary weights.', q2 = 'And again?';
  const r1 = await say(page, q1);
  ok((await state(page)) === 'done', 'the first reply finished (state done)');
  const msgs = [{ role: 'system', content: system }, { role: 'user', content: q1 }];
  const d1 = await direct(url, msgs);
  ok(r1 !== null && r1.length > 0 && Buffer.from(r1).equals(Buffer.from(d1)),
    'streamed reply in the page is byte-identical to /v1/chat/completions: ' + JSON.stringify(r1) +
    ' vs ' + JSON.stringify(d1));
  const r2 = await say(page, q2);
  const d2 = await direct(url, msgs.concat([{ role: 'assistant', content: d1 }, { role: 'user', content: q2 }]));
  ok(Buffer.from(r2).equals(Buffer.from(d2)), 'second turn (history resent) is byte-identical too');
  const status = await page.textContent('#status');
  ok(/\d+ tokens/.test(status) && /tokens\/s/.test(status) && /finish: length/.test(status),
    'status shows tokens, tokens/s and the finish reason: ' + status);

  // Hover a token of the reply: the tooltip shows its logprob and the alternatives.
  await page.hover('#messages .msg.assistant .body span.tok >> nth=1');
  await page.waitForSelector('#tip:not([hidden])', { timeout: WAIT });
  const tip = await page.textContent('#tip');
  ok(/logprob -?\d+\.\d{4}/.test(tip) && (await page.$$('#tip .alt')).length >= 2,
    'hovering a token shows its logprob and alternatives: ' + JSON.stringify(tip.slice(0, 120)));
  return { page, system, q1, d1 };
}

// Markup in a prompt is text: no element is created, no handler runs.
async function escaping(page) {
  const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>&amp;';
  await say(page, evil);
  const r = await page.evaluate((e) => {
    const users = document.querySelectorAll('#messages .msg.user .body');
    return {
      shown: users[users.length - 1].textContent === e,
      elements: document.querySelectorAll('#messages img, #messages script, #messages b').length,
      pwned: window.__pwned || 0,
    };
  }, evil);
  ok(r.shown && r.elements === 0 && r.pwned === 0, 'markup in a message is shown as text: ' + JSON.stringify(r));
}

// Stop during a long sampled reply: the stream ends, the server counts the request as
// cancelled (code 499 on /v1/chat/completions in /metrics).
async function stop(page) {
  const re = /trit_requests_total\{route="\/v1\/chat\/completions",code="499"\} (\d+)/;
  const before = await metric(url, re);
  await page.fill('#temperature', '0.8');
  await page.fill('#seed', '7'); // sampled, but the same reply every run
  await page.fill('#max_tokens', '1500');
  await page.fill('#prompt', 'Tell me a very long story.');
  await page.click('#send');
  await page.waitForFunction(() => document.querySelectorAll('#messages .msg.assistant:last-child span.tok').length >= 3,
    null, { timeout: WAIT });
  await page.click('#stop');
  await waitState(page, ['stopped', 'done', 'error']);
  ok((await state(page)) === 'stopped', 'Stop ends the reply (state stopped)');
  const deadline = Date.now() + WAIT;
  let after = before;
  while (after <= before && Date.now() < deadline) {
    after = await metric(url, re);
    if (after <= before) await new Promise((r) => setTimeout(r, 100));
  }
  ok(after === before + 1, 'the server cancelled the stopped request (499 count ' + before + ' -> ' + after + ')');
}

// "New chat" during a reply: the stream is cancelled on the server and the cut reply does
// not come back into the next conversation (its first greedy reply is the one-turn answer).
async function newChat(page, system, q1, d1) {
  const re = /trit_requests_total\{route="\/v1\/chat\/completions",code="499"\} (\d+)/;
  const before = await metric(url, re);
  await page.fill('#temperature', '0.8');
  await page.fill('#max_tokens', '1500');
  await page.fill('#prompt', 'Another long story, please.');
  await page.click('#send');
  await page.waitForFunction(() => document.querySelectorAll('#messages .msg.assistant:last-child span.tok').length >= 3,
    null, { timeout: WAIT });
  await page.click('#clear');
  await waitState(page, ['idle']);
  const deadline = Date.now() + WAIT;
  let after = before;
  while (after <= before && Date.now() < deadline) {
    after = await metric(url, re);
    if (after <= before) await new Promise((r) => setTimeout(r, 100));
  }
  ok(after === before + 1 && (await page.$$('#messages .msg')).length === 0,
    'New chat cancels the reply on the server and empties the page');
  await setForm(page, system);
  const r = await say(page, q1);
  ok(Buffer.from(r).equals(Buffer.from(d1)), 'the new chat starts with no history: ' + JSON.stringify(r));
}

// The CSP is enforced, not only sent: inline script put in the DOM does not run. And a
// request the server refuses shows the server's error (top_p outside [0, 1] is a 400).
async function cspEnforced(browser) {
  const page = await newPage(browser);
  await page.goto(url + '/');
  await waitState(page, ['idle']);
  await page.fill('#top_p', '2');
  await say(page, 'hi');
  const err = await page.textContent('#messages .msg.assistant .error').catch(() => '');
  ok((await state(page)) === 'error' && /HTTP 400: .*top_p/.test(err), 'a refused request shows the server\'s error: ' + err);
  const ran = await page.evaluate(() => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', () => resolve(window.__inline || 'blocked'));
    const s = document.createElement('script');
    s.textContent = 'window.__inline = "ran"';
    document.body.append(s);
    setTimeout(() => resolve(window.__inline || 'no-violation'), 5000);
  }));
  ok(ran === 'blocked', 'inline script is refused by the CSP (' + ran + ')');
  await page.context().close();
}

// The server with a key: the page asks for it, refuses a wrong one, works with the right one
// and keeps it nowhere but in memory.
async function keyed(browser) {
  const page = await newPage(browser);
  await page.goto(keyedUrl + '/');
  await waitState(page, ['needs-key']);
  ok(await page.isVisible('#apikey'), 'a keyed server: the page asks for the API key');
  // a message sent before the key: refused (401), kept, and sent once the key works
  await setForm(page, '');
  await page.fill('#prompt', 'hello');
  await page.click('#send');
  await waitState(page, ['needs-key']);
  ok((await page.$$('#messages .msg')).length === 0, 'a message sent without the key waits for it');
  await page.fill('#apikey', 'wrong-' + key);
  await page.click('#usekey'); // the page is 'checking-key' until /props answers
  await waitState(page, ['needs-key', 'idle']);
  ok((await state(page)) === 'needs-key' && (await page.isVisible('#apikey')), 'a wrong key is refused (still asking)');
  await page.fill('#apikey', key);
  await page.click('#usekey');
  // the key works: the identity loads and the waiting message is sent at once
  await page.waitForFunction(() => document.querySelectorAll('#messages .msg.assistant').length === 1 &&
    ['done', 'error'].includes(document.body.dataset.state), null, { timeout: WAIT });
  ok((await page.textContent('#template')) === 'chatml' && !(await page.isVisible('#apikey')),
    'the right key is accepted (identity loaded, key box gone)');
  const r = await page.textContent('#messages .msg.assistant .body');
  const d = await direct(keyedUrl, [{ role: 'user', content: 'hello' }], { Authorization: 'Bearer ' + key });
  ok((await state(page)) === 'done' && Buffer.from(r).equals(Buffer.from(d)), 'with the key the waiting message is sent and answered: ' + JSON.stringify(r));
  const kept = await page.evaluate((k) => ({
    local: localStorage.length, session: sessionStorage.length, cookie: document.cookie,
    inDom: document.documentElement.outerHTML.includes(k), url: location.href.includes(k),
  }), key);
  const cookies = await page.context().cookies();
  ok(kept.local === 0 && kept.session === 0 && kept.cookie === '' && !kept.inDom && !kept.url &&
    cookies.length === 0, 'the key is kept in memory only: ' + JSON.stringify(kept));
  // the 401s of the key exchange are expected console noise; anything else is a problem
  const other = page.problems.filter((p) => !/status of 401/.test(p));
  ok(other.length === 0, 'keyed page: no console errors or CSP violations: ' + JSON.stringify(other));
  await page.context().close();
}

async function main() {
  const browser = await launch();
  try {
    const first = await openServer(browser);
    const page = first.page;
    await escaping(page);
    await stop(page);
    // the screenshot: a conversation with a logprob tooltip open
    await page.hover('#messages .msg.assistant .body span.tok >> nth=2');
    await page.waitForSelector('#tip:not([hidden])', { timeout: WAIT });
    const png = await page.screenshot();
    fs.writeFileSync(path.join(outDir, 'chat-page.png'), png);
    if (process.env.TRIT_UPDATE_DOCS_IMG) fs.writeFileSync(process.env.TRIT_UPDATE_DOCS_IMG, png);
    const colours = pngColours(png);
    ok(colours > 200, 'the screenshot is not blank (' + colours + ' colours)');
    await newChat(page, first.system, first.q1, first.d1);
    ok(page.problems.length === 0, 'no console errors or CSP violations: ' + JSON.stringify(page.problems));
    await page.context().close();
    await cspEnforced(browser);
    await keyed(browser);
  } finally {
    await browser.close();
  }
  done();
}
main().catch((e) => fail('exception: ' + (e && e.stack ? e.stack : e)));
