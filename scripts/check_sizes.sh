#!/usr/bin/env bash
# The size limits that keep the code readable (issue 20): run by `make lint`. Prints one line for
# each file that breaks a limit and exits non-zero when any does; prints nothing when all hold.
#
#   scripts/check_sizes.sh
#
# A file over a limit is split by job (a module, or a Rust file, with one role each), never made
# to fit by packing lines.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0

# ---- Erlang: no module under erlang/ over 400 lines ----------------------------------------
ERL_MAX_LINES=400
while IFS= read -r -d '' file; do
  lines=$(wc -l < "$file")
  if (( lines > ERL_MAX_LINES )); then
    echo "$file: $lines lines, more than $ERL_MAX_LINES: split the module by job"
    status=1
  fi
done < <(find erlang -name '*.erl' -print0 | sort -z)

# ---- Rust: no file under native/*/src over 700 lines before its tests ------------------------
# The lines before the first `#[cfg(test)]` at the start of a line (a file without one counts
# whole). No function over 80 lines is clippy's `too_many_lines` (threshold in clippy.toml, warned
# in every crate), so `cargo clippy --all-targets -- -D warnings` (make test) refuses one.
RS_MAX_LINES=700
while IFS= read -r -d '' file; do
  lines=$(awk '/^#\[cfg\(test\)\]/ { exit } { n++ } END { print n + 0 }' "$file")
  if (( lines > RS_MAX_LINES )); then
    echo "$file: $lines lines before its tests, more than $RS_MAX_LINES: split the file by job"
    status=1
  fi
done < <(find native/*/src -name '*.rs' -print0 | sort -z)

exit $status
