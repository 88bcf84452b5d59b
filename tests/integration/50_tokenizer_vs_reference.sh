#!/usr/bin/env bash
# 50_tokenizer_vs_reference.sh — differential test: `trit tokenize` vs the reference
# `llama-tokenize` on a generated corpus (random Unicode from many scripts, code, emoji with
# ZWJ sequences, whitespace runs, tabs/newlines, numbers of all lengths, mixed-case
# contractions) for several vocabularies. All cases go through one process per side: they are
# joined by a control token of the vocabulary and both sides parse special tokens, which cuts
# the text into independent fragments exactly where the cases meet. Fails on the first
# differing case, printing the text and both id lists.
source "$(dirname "$0")/lib.sh"

LT="$(ref_bin llama-tokenize)"
[ -x "$LT" ] || fail "reference llama-tokenize not found at $LT"
MODELS="$REF_DIR/src/models"
N_CASES="${TOK_DIFF_CASES:-400}"

# vocab : separator token text (a control token of that vocabulary)
VOCABS=(
  "llama-bpe:<|end_of_text|>"
  "gpt-2:<|endoftext|>"
  "qwen2:<|endoftext|>"
  "llama-spm:</s>"
  "deepseek-llm:<｜end▁of▁sentence｜>"
  "falcon:<|endoftext|>"
  "starcoder:<|endoftext|>"
)

python3 - "$TMP/corpus.json" "$N_CASES" <<'PY'
import json, random, sys, unicodedata
random.seed(20240611)
out, n = sys.argv[1], int(sys.argv[2])
# blocks of many scripts; only characters assigned in this Python's Unicode (14) are used,
# since the reference's newer tables may classify later additions differently
ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x530, 0x58F),
          (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0x980, 0x9FF), (0xE00, 0xE7F),
          (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1780, 0x17FF), (0x1E00, 0x1FFF),
          (0x2000, 0x206F), (0x2070, 0x209F), (0x20A0, 0x20CF), (0x2100, 0x218F),
          (0x2190, 0x23FF), (0x2460, 0x24FF), (0x2500, 0x27BF), (0x3000, 0x303F),
          (0x3040, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0xFF00, 0xFFEF),
          (0x1D400, 0x1D7FF), (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0x0300, 0x036F)]
def rchar():
    while True:
        lo, hi = random.choice(ranges)
        c = random.randint(lo, hi)
        if unicodedata.category(chr(c)) not in ('Cn', 'Cs', 'Co'):
            return chr(c)
emoji = ["👨‍👩‍👧‍👦", "🏳️‍🌈", "👩🏽‍💻", "😶‍🌫️", "🦙", "✅", "❤️", "🇫🇷", "1️⃣", "🧑‍🤝‍🧑"]
words = ["the", "The", "HELLO", "don't", "I'M", "we'LL", "she'S", "they're", "you'VE", "it'd",
         "Straße", "naïve", "Привет", "мир", "日本語", "中文", "한국어", "العربية", "עברית",
         "हिन्दी", "ไทย", "Ελληνικά", "café", "x86_64", "O'Neil", "rock'n'roll", "'s", "'t"]
code = ["def f(x):\n    return x**2  # square\n", "int main(void) { return 0; }\n",
        "for (i = 0; i < n; ++i) {\n\tsum += a[i];\n}", "if x != None and y >= 3:\n\tpass",
        "const re = /[a-z]+/gi; // regex", "SELECT * FROM t WHERE id=42;", "<div class=\"x\">&amp;</div>",
        "fn main() -> Result<(), Box<dyn Error>> {}", "x := map[string]int{\"a\": 1}",
        "$ echo $HOME | grep -v '^#'", "a+=b;c-=d*e/f%g^h|i&j~k"]
ws = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2003", "    ", "\n\t "]
def number():
    return str(random.randint(0, 10 ** random.randint(1, 25)))
cases = []
for i in range(n):
    kind = i % 7
    parts = []
    for _ in range(random.randint(1, 12)):
        r = random.random()
        if kind == 0:
            parts.append("".join(rchar() for _ in range(random.randint(1, 8))))
        elif kind == 1:
            parts.append(random.choice(code))
        elif kind == 2:
            parts.append(random.choice(emoji) if r < 0.6 else random.choice(words))
        elif kind == 3:
            parts.append(random.choice(ws) * random.randint(1, 4) if r < 0.5 else random.choice(words))
        elif kind == 4:
            parts.append(number() if r < 0.6 else random.choice(["3.14", "1,000,000", "-42", "0x1F", "١٢٣", "٣", "½", "²", "Ⅻ"]))
        elif kind == 5:
            parts.append(random.choice(words))
        else:
            parts.append(random.choice([rchar(), random.choice(ws), random.choice(words), number(), random.choice(emoji)]))
        if random.random() < 0.5:
            parts.append(random.choice(ws) if random.random() < 0.3 else " ")
    cases.append("".join(parts))
json.dump(cases, open(out, "w"))
PY

for entry in "${VOCABS[@]}"; do
  v="${entry%%:*}" sep="${entry#*:}"
  gguf="$MODELS/ggml-vocab-$v.gguf"
  [ -f "$gguf" ] || fail "vocab $gguf missing"
  python3 - "$TMP/corpus.json" "$sep" "$TMP/in-$v.txt" <<'PY'
import json, sys
cases, sep, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
open(out, "w", encoding="utf-8", newline="").write(sep.join(c for c in cases if sep not in c))
PY
  "$LT" -m "$gguf" -f "$TMP/in-$v.txt" --ids --no-bos --no-escape --log-disable >"$TMP/ref-$v.txt" 2>"$TMP/ref-$v.err" ||
    { tail -5 "$TMP/ref-$v.err" >&2; fail "llama-tokenize failed on $v"; }
  "$TRIT" tokenize "$gguf" --file "$TMP/in-$v.txt" --ids --no-special --parse-special >"$TMP/trit-$v.txt" ||
    fail "trit tokenize failed on $v"
  sep_id=$("$TRIT" tokenize "$gguf" "$sep" --ids --no-special --parse-special | tr -d '[]')
  python3 - "$TMP/corpus.json" "$sep" "$sep_id" "$TMP/ref-$v.txt" "$TMP/trit-$v.txt" "$v" <<'PY' || exit 1
import json, sys
cases = [c for c in json.load(open(sys.argv[1])) if sys.argv[2] not in c]
sep_id, v = int(sys.argv[3]), sys.argv[6]
def parse(p):
    s = open(p).read().strip().splitlines()[-1].strip()
    return json.loads(s)
ref, mine = parse(sys.argv[4]), parse(sys.argv[5])
def split(ids):
    out, cur = [], []
    for i in ids:
        if i == sep_id:
            out.append(cur); cur = []
        else:
            cur.append(i)
    out.append(cur)
    return out
if ref == mine:
    print(f"ok: {v}: {len(cases)} cases, {len(ref)} ids identical")
    sys.exit(0)
r, m = split(ref), split(mine)
for k in range(max(len(r), len(m))):
    a = r[k] if k < len(r) else None
    b = m[k] if k < len(m) else None
    if a != b:
        print(f"FAIL: {v}: case {k} differs", file=sys.stderr)
        print(f"  text: {cases[k]!r}" if k < len(cases) else "  (no such case)", file=sys.stderr)
        print(f"  llama-tokenize: {a}", file=sys.stderr)
        print(f"  trit tokenize:  {b}", file=sys.stderr)
        break
sys.exit(1)
PY
done
echo "ok: tokenizer agrees with llama-tokenize on ${#VOCABS[@]} vocabularies"
