#!/usr/bin/env bash
# Runs every cargo-fuzz target of native/guard_core for SECONDS each (libFuzzer's
# -max_total_time) and fails as soon as one finds a crash, a hang (-timeout) or a memory blow-up
# (-rss_limit_mb). Installs cargo-fuzz when missing; needs a nightly toolchain (installed with
# rustup when missing). Usage: scripts/fuzz.sh SECONDS    (make fuzz FUZZ_SECONDS=600)
# Environment: FUZZ_TARGETS (default: all targets), FUZZ_TOOLCHAIN (default: nightly),
# FUZZ_FIXTURE (a real export used as a seed for verify_bytes).
set -euo pipefail

SECS=${1:-}
if [[ ! $SECS =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 SECONDS   (how long to run each fuzz target)" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRATE=$ROOT/native/guard_core
FUZZ=$CRATE/fuzz
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
TARGETS=${FUZZ_TARGETS:-cron_parse verify_bytes}
FIXTURE=${FUZZ_FIXTURE:-$ROOT/test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz}

if ! cargo "+$TOOLCHAIN" --version >/dev/null 2>&1; then
  echo "==> installing the $TOOLCHAIN toolchain"
  rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Seed corpora (kept out of git; new inputs found while fuzzing are added next to them).
seed() { # seed TARGET NAME CONTENT
  mkdir -p "$FUZZ/corpus/$1"
  [[ -e $FUZZ/corpus/$1/$2 ]] || printf '%s' "$3" >"$FUZZ/corpus/$1/$2"
}
i=0
for expr in '0 1 * * 0' '*/15 9-17 * * mon-fri' '@daily' '0 0 29 2 *' '5 4 1,15 jan-jun/2 7' \
            '0 0 30 2 *' '* * * * * *' '0 12 * * sun#2' '@reboot' '0 0 31 4,6,9,11 *'; do
  seed cron_parse "seed$i" "$expr"
  i=$((i + 1))
done
mkdir -p "$FUZZ/corpus/verify_bytes"
if [[ -f $FIXTURE && ! -e $FUZZ/corpus/verify_bytes/emqx-5.3.2-export ]]; then
  cp "$FIXTURE" "$FUZZ/corpus/verify_bytes/emqx-5.3.2-export"
fi

# verify_bytes writes every input to a file: keep those in memory when possible, and clean up.
GUARD_FUZZ_SCRATCH=$(mktemp -d -p /dev/shm guard_fuzz.XXXXXX 2>/dev/null || mktemp -d -t guard_fuzz.XXXXXX)
export GUARD_FUZZ_SCRATCH
trap 'rm -rf "$GUARD_FUZZ_SCRATCH"' EXIT

cd "$CRATE"
failed=()
for target in $TARGETS; do
  echo "==> fuzzing $target for ${SECS}s"
  if cargo "+$TOOLCHAIN" fuzz run --fuzz-dir "$FUZZ" "$target" -- \
      -max_total_time="$SECS" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1; then
    echo "==> $target: clean for ${SECS}s"
  else
    echo "==> $target: FAILED (reproducer in $FUZZ/artifacts/$target/)" >&2
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing clean: $TARGETS, ${SECS}s each"
