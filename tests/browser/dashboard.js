// tests/browser/dashboard.js — the burn-in dashboard in headless Chromium:
//   node dashboard.js URL GATE_JSON LEDGER APPEND_CMD SHOT [DOCS_SHOT]
//   node dashboard.js --key URL KEY ROUNDS   (a server with a key: the page asks for it)
// 1. the page's gate table equals `trit gate --json` (GATE_JSON) cell by cell, and its round
//    count equals the ledger's;
// 2. APPEND_CMD (a second burn-in run resuming the ledger) adds rounds: the page shows them
//    without a reload;
// 3. a real miss opens with its highlight at the first divergent byte and both sides' top-k;
// 4. a round whose reply holds markup (appended here as the writer does: hash-chained) shows
//    that markup as text and runs none of it;
// 5. no console error or CSP violation; screenshots are not blank.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { execSync } = require('child_process');
const { launch, newPage, pngColours, ok, fail, done } = require('./lib.js');

const keyMode = process.argv[2] === '--key';
const [url, gatePath, ledger, appendCmd, shot, docsShot] = process.argv.slice(keyMode ? 3 : 2);
if (!shot && !keyMode) fail('usage: dashboard.js URL GATE_JSON LEDGER APPEND_CMD SHOT [DOCS_SHOT]');

const records = () => fs.readFileSync(ledger, 'utf8').split('\n').filter((l) => l.trim());
const roundsIn = () => records().filter((l) => JSON.parse(l).type === 'round').length;

// Wait for fn (run in the page) to return true, with a generous deadline: observe, never sleep.
async function until(page, fn, arg, what, ms) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms || 20000, polling: 100 });
    return true;
  } catch (e) {
    return ok(false, what + ' (not seen within ' + ((ms || 20000) / 1000) + ' s)');
  }
}

// Append one round whose gen-2 reply holds markup, exactly as the ledger writer would: the
// next round number and "prev" = sha256 of the last line, so the chain stays intact.
function appendMarkupRound() {
  const lines = records();
  const last = lines[lines.length - 1];
  const rounds = lines.map((l) => JSON.parse(l)).filter((r) => r.type === 'round');
  const base = rounds[rounds.length - 1];
  const common = 'Same start é ';
  const rec = Object.assign({}, base, {
    prev: crypto.createHash('sha256').update(last).digest('hex'),
    ts: Date.now() / 1000, time: new Date().toISOString(), round: base.round + 1,
    prompt_id: 'markup-probe', bucket: 'no-match', tie: 'real',
    text_v1: common + 'and the same end',
    text_v2: common + '<img id="pwn" src="x" onerror="window.pwned=1"><b>bold</b>',
  });
  rec.prefix_len = rec.div_byte = Buffer.byteLength(common);
  delete rec.split; // the base round's top-k belong to its own texts
  rec.gap_v1 = rec.gap_v2 = null;
  fs.appendFileSync(ledger, JSON.stringify(rec) + '\n');
  return rec;
}

// The miss view: the mark sits at div_byte (UTF-8 bytes before it), as the page shows it.
function markAt(page, side) {
  return page.evaluate((s) => {
    const pre = document.getElementById('reply-' + s), mark = document.getElementById('reply-' + s + '-mark');
    const head = pre.querySelector('.head');
    return { bytes: new TextEncoder().encode(head.textContent).length, mark: mark.textContent,
      text: pre.textContent, parentOk: mark.parentNode === pre };
  }, side);
}

// With a key: the API answers 401 until the key is given in the page's form; then the page
// fills in (its GETs carry no Origin, so trit shadow's no-Origin rule lets them through).
async function keyCheck(url, key, rounds) {
  const browser = await launch();
  const page = await newPage(browser);
  await page.goto(url);
  await until(page, () => !document.getElementById('keyform').hidden, null, 'the page asks for the key');
  ok(await page.textContent('#rounds') === '–', 'no data before the key');
  await page.fill('#key', key);
  await page.click('#keyform button');
  await until(page, (n) => document.body.dataset.rounds === n, rounds, 'the page shows ' + rounds + ' rounds with the key');
  await until(page, () => document.querySelectorAll('#gates tbody tr').length > 0, null, 'the gate table with the key');
  const other = page.problems.filter((p) => !/status of 401/.test(p));
  ok(other.length === 0, 'no console errors or CSP violations but the 401s' + (other.length ? ': ' + other.join('; ') : ''));
  await browser.close();
  done();
}

(async () => {
  if (keyMode) return keyCheck(url, gatePath, ledger); // URL KEY ROUNDS
  const gate = JSON.parse(fs.readFileSync(gatePath, 'utf8'));
  const browser = await launch();
  const page = await newPage(browser);
  const resp = await page.goto(url);
  ok(resp.status() === 200, 'page served (' + resp.status() + ')');
  ok(/script-src 'self'/.test(resp.headers()['content-security-policy'] || ''), 'strict CSP on the page');

  // 1. the gate table, cell by cell, against trit gate --json
  const n0 = roundsIn();
  await until(page, (n) => document.body.dataset.rounds === String(n), n0, 'page shows ' + n0 + ' rounds');
  await until(page, (n) => document.querySelectorAll('#gates tbody tr').length === n, gate.gates.length,
    'gate table has ' + gate.gates.length + ' rows');
  const rows = await page.$$eval('#gates tbody tr', (trs) => trs.map((tr) =>
    Array.from(tr.cells).map((td) => td.textContent)));
  const want = gate.gates.map((g) => [g.gate, g.target, g.current, g.verdict, g.why]);
  ok(JSON.stringify(rows) === JSON.stringify(want), 'gate table equals trit gate --json' +
    (JSON.stringify(rows) === JSON.stringify(want) ? '' : ': page ' + JSON.stringify(rows) + ' vs ' + JSON.stringify(want)));
  ok(await page.textContent('#verdict') === gate.verdict, 'verdict ' + gate.verdict);
  ok(await page.textContent('#rounds') === String(gate.stats.rounds), 'round count equals trit gate\'s');
  ok(await page.$$eval('#chart-exact svg polyline, #chart-exact svg circle', (l) => l.length) > 0, 'exact-match chart drawn');
  ok(await page.$$eval('#chart-lat svg polyline, #chart-lat svg circle', (l) => l.length) >= 2, 'latency chart drawn');
  ok(await page.$$eval('#cats tbody tr', (l) => l.length) > 0, 'categories listed');

  // 3. a real miss: highlight at the first divergent byte, top-k at the split
  const nMiss = await page.$$eval('#misses tbody tr', (l) => l.length);
  if (!ok(nMiss > 0, 'misses listed (' + nMiss + ')')) fail('no miss to open');
  const first = await page.$eval('#misses tbody tr', (tr) => Number(tr.dataset.id));
  await page.click('#misses tbody tr');
  await until(page, (id) => document.body.dataset.missShown === String(id), first, 'miss ' + first + ' opened');
  const byRound = Object.fromEntries(records().map((l) => JSON.parse(l)).filter((r) => r.type === 'round').map((r) => [r.round, r]));
  const roundNo = Number(await page.$eval('#misses tbody tr', (tr) => tr.cells[1].textContent));
  const rec = byRound[roundNo];
  for (const side of ['v1', 'v2']) {
    const m = await markAt(page, side);
    ok(m.text === rec['text_' + side], side + ': the reply shown whole');
    const b = Buffer.from(rec['text_' + side]);
    ok(m.bytes === Math.min(rec.div_byte, b.length) || (b[rec.div_byte] & 0xc0) === 0x80,
      side + ': highlight at byte ' + rec.div_byte + ' (page: ' + m.bytes + ')');
  }
  if (rec.split && rec.split.v1)
    ok(await page.$$eval('#top-v1 tr', (l) => l.length) === rec.split.v1.top.length + 1, 'gen-1 top-k at the split');

  // 2. rounds appended while the page is open appear without a reload
  execSync(appendCmd, { stdio: 'inherit', shell: '/bin/bash' });
  const n1 = roundsIn();
  ok(n1 > n0, 'the append command added rounds (' + n0 + ' -> ' + n1 + ')');
  await until(page, (n) => document.getElementById('rounds').textContent === String(n), n1, 'page updated to ' + n1 + ' rounds');

  // 4. markup in a reply is text
  const probe = appendMarkupRound();
  await until(page, () => Array.from(document.querySelectorAll('#misses tbody tr')).some((tr) => tr.cells[2].textContent === 'markup-probe'),
    null, 'the appended miss listed');
  await page.click('#misses tbody tr >> text=markup-probe');
  await until(page, () => /markup-probe/.test(document.getElementById('miss-title').textContent), null, 'markup miss opened');
  const m2 = await markAt(page, 'v2');
  ok(m2.text === probe.text_v2, 'markup shown as text');
  ok(m2.bytes === probe.div_byte && m2.mark === '<', 'highlight on the first divergent byte, after a 2-byte character');
  ok(await page.evaluate(() => document.getElementById('pwn') === null && document.querySelector('#miss b') === null), 'no element made from a reply');
  ok(await page.evaluate(() => window.pwned === undefined), 'no script from a reply ran');

  // 5. screenshots (with a real miss open), problems
  const real = await page.$eval('#misses tbody tr:nth-child(2)', (tr) => Number(tr.dataset.id));
  await page.click('#misses tbody tr:nth-child(2)');
  await until(page, (id) => document.body.dataset.missShown === String(id), real, 'a real miss reopened');
  await page.screenshot({ path: shot, fullPage: true });
  const colours = pngColours(fs.readFileSync(shot));
  ok(colours > 100, 'screenshot not blank (' + colours + ' colours)');
  if (docsShot) fs.copyFileSync(shot, docsShot);
  ok(page.problems.length === 0, 'no console errors or CSP violations' + (page.problems.length ? ': ' + page.problems.join('; ') : ''));
  await browser.close();
  done();
})().catch((e) => fail('exception: ' + (e.stack || e)));
