// tests/integration/openai/js.mjs — a small jq stand-in for the server's shell tests, on the
// Node.js that scripts/setup installs (jq itself is not guaranteed on a fresh machine).
// usage: node js.mjs [-n|-s|-R] [-e] [-r|-j] [--arg NAME STR]... [--argjson NAME JSON]... EXPR [FILE]
//   EXPR is a JavaScript expression over `d` (the parsed input) and $NAME variables.
//   input: FILE or stdin; -n none (d = null); -s a stream of JSON values -> array; -R raw text.
//   output: JSON (compact); -r/-j strings raw (with / without newline); -e: exit 1 when the
//   result is false, null or undefined (prints nothing then).
import { readFileSync } from 'node:fs';

const a = process.argv.slice(2);
let mode = 'json', check = false, raw = '', expr = null, file = null;
const names = [], vals = [];
for (let i = 0; i < a.length; i++) {
  const x = a[i];
  if (x === '-n' || x === '-s' || x === '-R') mode = x;
  else if (x === '-e') check = true;
  else if (x === '-r' || x === '-j') raw = x;
  else if (x === '--arg') { names.push('$' + a[i + 1]); vals.push(a[i + 2]); i += 2; }
  else if (x === '--argjson') { names.push('$' + a[i + 1]); vals.push(JSON.parse(a[i + 2])); i += 2; }
  else if (expr === null) expr = x;
  else file = x;
}
if (expr === null) { console.error('js.mjs: no expression'); process.exit(2); }
const text = mode === '-n' ? '' : readFileSync(file ?? 0, 'utf8');
let d = null;
try {
  if (mode === '-R') d = text;
  else if (mode === '-s') {
    d = [];
    for (const line of text.split('\n')) if (line.trim()) d.push(JSON.parse(line));
  } else if (mode === 'json') d = JSON.parse(text);
} catch (e) {
  console.error(`js.mjs: input is not JSON: ${e.message}: ${text.slice(0, 200)}`);
  process.exit(check ? 1 : 2);
}
let r;
try {
  r = new Function('d', ...names, `return (${expr});`)(d, ...vals);
} catch (e) {
  if (!check) { console.error(`js.mjs: ${e.message}`); process.exit(2); }
  r = undefined;
}
if (check && (r === false || r === null || r === undefined)) process.exit(1);
if (raw && typeof r === 'string') process.stdout.write(raw === '-r' ? r + '\n' : r);
else process.stdout.write(JSON.stringify(r) + (raw === '-j' ? '' : '\n'));
