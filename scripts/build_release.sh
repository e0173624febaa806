#!/usr/bin/env bash
# Builds the plugin of an earlier release from its commit, for the mixed-version suite
# (test/emqx_guard_mixed_versions_SUITE.erl runs it on one peer node beside this build):
#
#   scripts/build_release.sh COMMIT DIR
#
# DIR/src holds the release's files (git archive of COMMIT), its beams in
# DIR/src/_build/default/lib/emqx_guard/ebin and its NIF library for this machine's architecture
# in DIR/src/priv/<arch>/ (cargo-zigbuild against glibc 2.17, as `make nif`; cargo's target dir
# DIR/target, or RELEASE_CARGO_TARGET_DIR: the first build takes minutes). DIR/.built-COMMIT marks
# a finished build: a second run does nothing.
set -euo pipefail
COMMIT=${1:?usage: scripts/build_release.sh COMMIT DIR}
DIR=${2:?usage: scripts/build_release.sh COMMIT DIR}
[[ -f $DIR/.built-$COMMIT ]] && exit 0

echo "==> building the plugin of $COMMIT in $DIR (once)"
ARCH=$(uname -m)
TARGET_DIR=${RELEASE_CARGO_TARGET_DIR:-$DIR/target}
rm -rf "$DIR/src" "$DIR"/.built-*
mkdir -p "$DIR/src"
git archive "$COMMIT" | tar -x -C "$DIR/src"
(
  cd "$DIR/src"
  ${CARGO:-cargo} zigbuild --release --locked -p guard_nif --target "$ARCH-unknown-linux-gnu.2.17" --target-dir "$TARGET_DIR"
  install -D -m 0644 "$TARGET_DIR/$ARCH-unknown-linux-gnu/release/libemqx_guard_nif.so" "priv/$ARCH/emqx_guard_nif.so"
  ${REBAR:-rebar3} compile
)
touch "$DIR/.built-$COMMIT"
