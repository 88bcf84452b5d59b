#!/usr/bin/env bash
# 07_cli_shape — every command the same shape (src/cli/cli.h):
#  1. no function in src/cli is over 80 lines (scripts/fn-length), nor anywhere outside
#     src/kernels and the one-path forward passes, and the check fails on one that is;
#  2. for every command, every long option of its getopt_long table (printed by the
#     hidden `trit CMD [SUB] --list-options`, cli_getopt) appears as --NAME in `trit CMD
#     --help`, and every --NAME in the help text is in the table; the check fails on a table
#     and a text that disagree.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# ---- 1. function length ----
out=$(scripts/fn-length src/cli/*.c) || fail "functions over 80 lines in src/cli: $out"
pass "no function in src/cli over 80 lines ($(ls src/cli/*.c | wc -l) files)"
# the whole tree (issue 24's rule): only src/kernels, the engine's one-path forward and train's
# forward/backward pair may be longer (each reads as one path with its shapes in comments)
allowed='^src/engine/engine.c:[0-9]*: [0-9]* lines: static void forward[(]|^src/train/graph.c:[0-9]*: [0-9]* lines: static (double|void) graph_(forward|backward)[(]'
files=$(find src -name '*.c' ! -path 'src/kernels/*' | sort)
out=$(scripts/fn-length $files | grep -Ev "$allowed" || true)
[ -z "$out" ] || fail "functions over 80 lines outside src/kernels and the forward passes: $out"
pass "no function over 80 lines in $(wc -w <<<"$files") files outside src/kernels (3 one-path forward/backward passes allowed)"

# the check itself: an 81-line function is reported, an 80-line one is not
{
  echo "static int long_one(void) {"
  for i in $(seq 79); do echo "    x();"; done
  echo "}"
} >"$TMP/long.c"
{
  echo "static int short_one(int a,"
  echo "                     int b) {"
  for i in $(seq 77); do echo "    x();"; done
  echo "}"
} >"$TMP/short.c"
if out=$(scripts/fn-length "$TMP/long.c" "$TMP/short.c"); then fail "an 81-line function passed"; fi
grep -q "long.c:1: 81 lines: static int long_one" <<<"$out" || fail "long function not named: $out"
grep -q short_one <<<"$out" && fail "an 80-line function was reported: $out"
pass "fn-length names an 81-line function and passes an 80-line one"

# ---- 2. --help against the options table ----
# Flags of other tools or commands that a help text names on purpose (not its own options).
declare -A foreign=([mkmodel]="quant-embd" [ppl]="ppl" [report]="gen1 gen2")

# check_help NAME HELP_TEXT TABLE_NAMES: the differences on stdout; exit 1 when any.
check_help() {
  local name="$1" text="$2" table="$3" in_text bad=0
  in_text=$(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$text" | sed 's/^--//' | sort -u)
  table=$(sort -u <<<"$table")
  for o in $table; do
    [ "$o" = help ] || grep -qx -- "$o" <<<"$in_text" || { echo "$name: --$o is not in --help"; bad=1; }
  done
  for o in $in_text; do
    [ "$o" = help ] || grep -qx -- "$o" <<<"$table" ||
      [[ " ${foreign[$name]:-} " == *" $o "* ]] || { echo "$name: --$o is in --help, not in the table"; bad=1; }
  done
  return $bad
}

# Every command; NAME:SUB,SUB for commands whose subcommands have their own tables.
commands=(doctor inspect quantize mkmodel tokenize run bench serve chat
  burnin:run,stats,drift,recent,since,verify,dashboard ppl ladder trace:capture,diff gate shadow report train)
# the list is every command of cli.h's TRIT_COMMANDS (a new command joins the check)
declared=$(grep -oE '^ +X\(([a-z]+),' src/cli/cli.h | sed -E 's/ +X\(([a-z]+),/\1/' | sort)
listed=$(printf '%s\n' "${commands[@]%%:*}" | sort)
[ -n "$declared" ] && [ "$declared" = "$listed" ] ||
  fail "the help check's commands differ from cli.h's: $(diff <(echo "$declared") <(echo "$listed") | grep '^[<>]')"
for c in "${commands[@]}"; do
  name=${c%%:*} table=""
  if [[ "$c" == *:* ]]; then
    subs=${c#*:}
    for sub in ${subs//,/ }; do table+=$("$TRIT" "$name" "$sub" --list-options)$'\n'; done
  else
    table=$("$TRIT" "$name" --list-options) || fail "$name --list-options: exit $?"
  fi
  [ -n "$table" ] || fail "$name --list-options printed nothing"
  help=$("$TRIT" "$name" --help) || fail "$name --help: exit $?"
  out=$(check_help "$name" "$help" "$table") || fail "help and table disagree: $out"
done
pass "--help and the options table agree for ${#commands[@]} commands"

# the check itself: a table option missing from the text, and a text option not in the table
if out=$(check_help t "  --alpha N  the alpha" $'alpha\nbeta\nhelp'); then fail "a missing --beta passed"; fi
grep -q "t: --beta is not in --help" <<<"$out" || fail "missing --beta not named: $out"
if out=$(check_help t "  --alpha N, --gamma" $'alpha\nhelp'); then fail "an unknown --gamma passed"; fi
grep -q "t: --gamma is in --help, not in the table" <<<"$out" || fail "--gamma not named: $out"
pass "the help check names both kinds of disagreement"
