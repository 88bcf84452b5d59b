// tests/integration/openai/split.mjs — explain a temperature-0 content mismatch between two
// OpenAI-compatible servers: re-ask both with logprobs, find the first differing token and
// classify the split as docs/DESIGN.md's decode rung does: a "tie" when, at the split, both sides'
// top-2 logprobs are within EPS and each side's token is in the other's top-5; else "real".
// usage: node split.mjs completions|chat/completions REF_URL CAND_URL BODY_JSON [EPS=2e-3]
// prints one line; exit 0 tie, 1 real split (or no split found), 2 error.
const [kind, refUrl, candUrl, bodyJson, epsArg] = process.argv.slice(2);
const eps = Number(epsArg ?? process.env.TIE_EPS ?? 2e-3);
const body = JSON.parse(bodyJson);
delete body.stream;
delete body.stream_options;
body.temperature = 0;
if (kind === 'completions') body.logprobs = 5;
else { body.logprobs = true; body.top_logprobs = 5; }

async function ask(url) {
  const r = await fetch(`${url}/v1/${kind}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const j = await r.json();
  const lp = j.choices?.[0]?.logprobs;
  const content = lp?.content; // both servers return this shape (trit adds it to completions)
  if (!Array.isArray(content)) throw new Error(`${url}: no logprobs.content in ${JSON.stringify(j).slice(0, 200)}`);
  return content.map((t) => ({
    tok: Buffer.from(t.bytes ?? []).toString('latin1') || t.token,
    top: (t.top_logprobs ?? []).map((a) => ({ tok: Buffer.from(a.bytes ?? []).toString('latin1') || a.token, lp: a.logprob })),
  }));
}

try {
  const [a, b] = await Promise.all([ask(refUrl), ask(candUrl)]);
  let i = 0;
  while (i < a.length && i < b.length && a[i].tok === b[i].tok) i++;
  if (i === a.length && i === b.length) { console.log('no token split (texts differ only in rendering)'); process.exit(1); }
  if (i === a.length || i === b.length) { console.log(`one side stopped at token ${i}`); process.exit(1); }
  const margin = (t) => (t.top.length >= 2 ? t.top[0].lp - t.top[1].lp : Infinity);
  const inTop = (tok, t) => t.top.slice(0, 5).some((x) => x.tok === tok);
  const fmt = (t) => t.top.slice(0, 2).map((x) => `${JSON.stringify(x.tok)} ${x.lp.toFixed(5)}`).join(', ');
  const tie = margin(a[i]) <= eps && margin(b[i]) <= eps && inTop(a[i].tok, b[i]) && inTop(b[i].tok, a[i]);
  console.log(`${tie ? 'tie' : 'REAL split'} at token ${i}: reference [${fmt(a[i])}] candidate [${fmt(b[i])}] (eps ${eps})`);
  process.exit(tie ? 0 : 1);
} catch (e) {
  console.log(`split.mjs: ${e.message}`);
  process.exit(2);
}
