#!/usr/bin/env bash
# The size rules of issue 20, as a step of `make lint` (they are checked, not only written down):
#   - no Erlang module over 400 lines (erlang/**/*.erl, the whole file);
#   - no Rust file over 700 lines before its tests (native/*/src/**/*.rs, the lines before the first
#     `#[cfg(test)]` at the start of a line; a file without one counts whole).
# The third rule, no Rust function over 80 lines, is clippy's `too_many_lines` (threshold in
# clippy.toml, warned in every crate), so `cargo clippy -- -D warnings` keeps it.
# Prints one line per file over its limit and exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."

ERLANG_MAX=400
RUST_MAX=700
over=0

while IFS= read -r -d '' file; do
  lines=$(wc -l <"$file")
  if ((lines > ERLANG_MAX)); then
    echo "$file: $lines lines; an Erlang module has at most $ERLANG_MAX"
    over=1
  fi
done < <(find erlang -name '*.erl' -print0 | sort -z)

while IFS= read -r -d '' file; do
  lines=$(awk '/^#\[cfg\(test\)\]/ { exit } { n++ } END { print n + 0 }' "$file")
  if ((lines > RUST_MAX)); then
    echo "$file: $lines lines before its tests; a Rust file has at most $RUST_MAX"
    over=1
  fi
done < <(find native/*/src -name '*.rs' -print0 | sort -z)

exit "$over"
