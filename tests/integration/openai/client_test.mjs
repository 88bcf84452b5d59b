// tests/integration/openai/client_test.mjs — the official `openai` npm package as a real client
// against trit serve: chat, completions, streaming (with usage), logprobs, errors.
// usage: node client_test.mjs BASE_URL API_KEY   (OPENAI_MODULE: path of the installed package)
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const OpenAI = require(process.env.OPENAI_MODULE);
const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0, timeout: 120000 });
let passed = 0;
const ok = (what) => { passed++; console.log(`ok: ${what}`); };

// models
const models = await client.models.list();
assert.ok(models.data.length >= 1 && typeof models.data[0].id === 'string');
const model = models.data[0].id;
ok(`models.list -> ${model}`);

// chat, non-streaming
const chat = await client.chat.completions.create({
  model, temperature: 0, max_tokens: 12,
  messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }],
});
assert.equal(chat.object, 'chat.completion');
assert.equal(chat.choices[0].message.role, 'assistant');
assert.equal(typeof chat.choices[0].message.content, 'string');
assert.ok(['stop', 'length'].includes(chat.choices[0].finish_reason));
assert.ok(chat.usage.prompt_tokens > 0 && chat.usage.completion_tokens > 0);
assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + chat.usage.completion_tokens);
ok('chat.completions.create');

// chat, streaming with usage: same text as non-streaming at temperature 0
const stream = await client.chat.completions.create({
  model, temperature: 0, max_tokens: 12, stream: true, stream_options: { include_usage: true },
  messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }],
});
let text = '', usage = null, finish = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    text += c.delta?.content ?? '';
    if (c.finish_reason) finish = c.finish_reason;
  }
}
assert.equal(text, chat.choices[0].message.content);
assert.equal(finish, chat.choices[0].finish_reason);
assert.ok(usage && usage.completion_tokens === chat.usage.completion_tokens, 'usage chunk');
ok(`chat streaming (${chunks} chunks, usage)`);

// chat logprobs
const lp = await client.chat.completions.create({
  model, temperature: 0, max_tokens: 4, logprobs: true, top_logprobs: 3,
  messages: [{ role: 'user', content: 'Count: 1, 2, 3' }],
});
const content = lp.choices[0].logprobs.content;
assert.equal(content.length, lp.usage.completion_tokens);
for (const t of content) {
  assert.ok(t.logprob <= 0 && t.top_logprobs.length === 3);
  assert.equal(t.token, t.top_logprobs[0].token, 'greedy token is the most likely');
}
ok('chat logprobs + top_logprobs');

// completions, non-streaming, with a stop string
const comp = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 });
assert.equal(comp.object, 'text_completion');
const full = comp.choices[0].text;
assert.ok(full.length > 0);
ok('completions.create');
if (full.length > 8) {
  const stop = full.slice(5, 8);
  const cut = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0, stop: [stop] });
  assert.equal(cut.choices[0].text, full.slice(0, full.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, 'stop');
  ok(`completions stop string ${JSON.stringify(stop)}`);
}

// completions streaming
const cs = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0, stream: true });
let ctext = '';
for await (const chunk of cs) ctext += chunk.choices[0]?.text ?? '';
assert.equal(ctext, full);
ok('completions streaming');

// completions logprobs (legacy shape) and echo with max_tokens 0 (prompt logprobs)
const cl = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 3, temperature: 0, logprobs: 2 });
const L = cl.choices[0].logprobs;
assert.equal(L.tokens.length, 3);
assert.equal(L.token_logprobs.length, 3);
assert.ok(L.top_logprobs.every((d) => Object.keys(d).length >= 1));
const echo = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 0, echo: true, logprobs: 0 });
const E = echo.choices[0].logprobs;
assert.equal(echo.choices[0].text, 'Once upon a time');
assert.equal(E.token_logprobs[0], null);
assert.ok(E.token_logprobs.slice(1).every((x) => typeof x === 'number' && x <= 0));
const ppl = Math.exp(-E.token_logprobs.slice(1).reduce((a, b) => a + b, 0) / (E.token_logprobs.length - 1));
ok(`completions logprobs; echo prompt logprobs -> perplexity ${ppl.toFixed(1)}`);

// errors surface as the SDK's typed errors
await assert.rejects(
  client.completions.create({ model, prompt: 'x', n: 2 }),
  (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /n/.test(e.message));
const bad = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'wrong', maxRetries: 0 });
await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
ok('400 and 401 arrive as BadRequestError / AuthenticationError');

console.log(`openai client: ${passed} checks passed`);
