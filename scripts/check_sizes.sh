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

# ---- Rust ----------------------------------------------------------------------------------
# The Rust limits (no file over 700 non-test lines, no function over 80 lines) go here, in the
# same form: one line per file or function over its limit, `status=1`.

exit $status
