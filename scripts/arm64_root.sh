#!/usr/bin/env bash
# Prepares an arm64 Debian 12 root holding Debian's arm64 Erlang (erlang-nox, OTP 25), to be run on
# an x86_64 host with qemu-user-static (test/emqx_guard_arm64_SUITE.erl runs the arm64 NIF in it).
#
#   scripts/arm64_root.sh DIR      (the Makefile uses /var/cache/emqx_guard/arm64-bookworm)
#
# debootstrap's first stage only (--foreign: no arm64 code runs, so no binfmt_misc is needed), then
# every downloaded package unpacked with dpkg-deb -x (no maintainer scripts: none is needed to run
# erl). DIR/.complete marks a finished root: a second run does nothing. The packages come from
# Debian's archive as the machine's own apt sources name it (scripts/debian_archive.sh;
# DEBIAN_ARCHIVE overrides it). Installs qemu-user-static and debootstrap with apt when missing.
set -euo pipefail
ROOT=${1:?usage: scripts/arm64_root.sh DIR}
SUITE=${ARM64_SUITE:-bookworm}
ARCHIVE=$("$(dirname "$0")/debian_archive.sh")

if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y qemu-user-static debootstrap ||
    { apt-get update && apt-get install -y qemu-user-static debootstrap; }
fi
[[ -f $ROOT/.complete ]] && exit 0

echo "==> preparing the arm64 Erlang root $ROOT (once)"
rm -rf "$ROOT"
mkdir -p "$(dirname "$ROOT")"
TMP=$(mktemp -d "$(dirname "$ROOT")/.arm64-root.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
debootstrap --foreign --arch=arm64 --variant=minbase --include=erlang-nox "$SUITE" "$TMP" "$ARCHIVE" >"$TMP.log" 2>&1 ||
  { tail -20 "$TMP.log" >&2; rm -f "$TMP.log"; exit 1; }
rm -f "$TMP.log"
for deb in "$TMP"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$TMP"; done
rm -f "$TMP"/var/cache/apt/archives/*.deb
ls "$TMP"/usr/lib/erlang/erts-*/bin/beam.smp >/dev/null
touch "$TMP/.complete"
mv "$TMP" "$ROOT"
trap - EXIT
echo "==> $ROOT ready"
