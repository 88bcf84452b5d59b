// tests/browser/lib.js — what every page test shares: Debian's Chromium driven headless by
// playwright-core (installed by scripts/setup into $TRIT_CACHE/browser), a page that records
// console errors and CSP violations, and a screenshot check that a page is not blank.
'use strict';
const path = require('path');
const os = require('os');
const zlib = require('zlib');

const cache = process.env.TRIT_CACHE || path.join(os.homedir(), '.cache', 'trit');
const { chromium } = require(path.join(cache, 'browser', 'node_modules', 'playwright-core'));

// Chromium as Debian installs it; TRIT_CHROMIUM names another. Root (CI containers) needs
// --no-sandbox: Chromium refuses to start its sandbox as root.
async function launch() {
  const args = ['--disable-gpu', '--no-first-run', '--no-default-browser-check'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return chromium.launch({
    executablePath: process.env.TRIT_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
  });
}

// A new page whose console errors, page errors and CSP violations are kept in page.problems:
// a test ends by checking that list is empty, so a script that failed quietly fails the test.
async function newPage(browser, opts) {
  const ctx = await browser.newContext(Object.assign({ viewport: { width: 1200, height: 900 } }, opts || {}));
  const page = await ctx.newPage();
  page.problems = [];
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push('console: ' + m.text()); });
  page.on('pageerror', (e) => page.problems.push('pageerror: ' + e.message));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
    });
  });
  return page;
}

// Distinct colours in a PNG (8-bit RGB/RGBA, non-interlaced: what Chromium writes). A blank
// page has one; a page with text, a table and a highlight has hundreds.
function pngColours(buf) {
  let off = 8, w = 0, h = 0, bpp = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off), type = buf.toString('ascii', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      w = data.readUInt32BE(0); h = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0) throw new Error('png: only 8-bit non-interlaced');
      bpp = { 2: 3, 6: 4 }[data[9]];
      if (!bpp) throw new Error('png: colour type ' + data[9]);
    } else if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = w * bpp, img = Buffer.alloc(stride * h);
  // Undo the per-row filters (PNG spec section 9: None, Sub, Up, Average, Paeth).
  for (let y = 0; y < h; y++) {
    const f = raw[y * (stride + 1)], src = y * (stride + 1) + 1, dst = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? img[dst + x - bpp] : 0, b = y ? img[dst - stride + x] : 0;
      const c = x >= bpp && y ? img[dst - stride + x - bpp] : 0;
      let p = 0;
      if (f === 1) p = a; else if (f === 2) p = b; else if (f === 3) p = (a + b) >> 1;
      else if (f === 4) {
        const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      img[dst + x] = (raw[src + x] + p) & 255;
    }
  }
  const seen = new Set();
  for (let i = 0; i < img.length; i += bpp) seen.add(img.readUIntBE(i, 3));
  return seen.size;
}

// Results in the suite's form: one "ok"/"not ok" line per check; the exit status says whether
// all held. fail() stops the test at once (later checks depend on earlier ones).
let failed = 0;
function ok(cond, what) {
  console.log((cond ? 'ok - ' : 'not ok - ') + what);
  if (!cond) failed++;
  return cond;
}
function fail(what) {
  console.log('not ok - ' + what);
  process.exit(1);
}
function done() { process.exit(failed ? 1 : 0); }

module.exports = { launch, newPage, pngColours, ok, fail, done };
