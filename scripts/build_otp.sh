#!/usr/bin/env bash
# Builds an Erlang/OTP from a Debian release's source package, for `make compat` (not used by CI).
#
#   scripts/build_otp.sh SUITE PREFIX [VERSION]   e.g. scripts/build_otp.sh forky /opt/otp-29
#
# SUITE is a Debian suite whose `erlang` source package has the OTP wanted (trixie: 27, forky or
# sid: newer). The source is fetched from Debian's archive as the machine's own apt sources name
# it (scripts/debian_archive.sh; DEBIAN_ARCHIVE overrides it) with apt-get, through a private apt
# configuration under $OTP_SRC_CACHE (default /var/tmp/emqx_guard-otp-src), so the machine's own
# apt sources are not changed; it is unpacked without Debian's patches (plain upstream OTP) and built with
# `./configure --without-wx --without-javac ...; make; make install` into PREFIX. Build
# dependencies (Debian 12): build-essential, libssl-dev, libncurses-dev, dpkg-dev; about 6 to 11
# minutes on 2 cores. The result is used as PREFIX/bin/erl.
#
# VERSION (a Debian version of `erlang`, e.g. 27.3.4.1+dfsg-1+deb13u3) fetches that .dsc and its
# files straight from the archive's pool instead (checked against the .dsc's SHA-256 sums): for
# when the suite's index names a version the archive no longer (or not yet) holds.
set -euo pipefail
SUITE=${1:?usage: scripts/build_otp.sh SUITE PREFIX [VERSION]}
PREFIX=${2:?usage: scripts/build_otp.sh SUITE PREFIX [VERSION]}
VERSION=${3:-}
CACHE=${OTP_SRC_CACHE:-/var/tmp/emqx_guard-otp-src}/$SUITE
ARCHIVE=$("$(dirname "$0")/debian_archive.sh")
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

mkdir -p "$CACHE/etc/parts" "$CACHE/lists/partial" "$CACHE/cache/archives/partial" "$CACHE/src"
echo "deb-src [signed-by=$KEYRING] $ARCHIVE $SUITE main" >"$CACHE/etc/sources.list"
: >"$CACHE/status"
APT=(apt-get -q -o "Dir::Etc::SourceList=$CACHE/etc/sources.list" -o "Dir::Etc::SourceParts=$CACHE/etc/parts"
  -o "Dir::State::Lists=$CACHE/lists" -o "Dir::State::Status=$CACHE/status" -o "Dir::Cache=$CACHE/cache")
cd "$CACHE/src"
if [[ -z $VERSION ]]; then
  "${APT[@]}" update
  "${APT[@]}" source --download-only erlang
  DSC=$(ls -t erlang_*.dsc | head -1)
else
  DSC=erlang_$VERSION.dsc
  POOL=$ARCHIVE/pool/main/e/erlang
  curl -fsSLo "$DSC" "$POOL/${DSC//+/%2b}"
  # the files listed under Checksums-Sha256: fetch each and check it
  awk '/^Checksums-Sha256:/{f=1; next} /^[^ ]/{f=0} f{print $1, $3}' "$DSC" | while read -r sum file; do
    [[ -f $file ]] && echo "$sum  $file" | sha256sum -c --quiet - 2>/dev/null || curl -fsSLo "$file" "$POOL/${file//+/%2b}"
    echo "$sum  $file" | sha256sum -c --quiet -
  done
fi
SRC=$CACHE/src/$(basename "$DSC" .dsc | sed 's/_/-/; s/-[^-]*$//')
rm -rf "$SRC"
dpkg-source --skip-patches -x "$DSC" "$SRC"
cd "$SRC"
./configure --prefix="$PREFIX" --without-wx --without-javac --without-odbc --without-jinterface \
  --without-debugger --without-observer --without-et --without-megaco --disable-dynamic-ssl-lib
make -j"$(nproc)"
# Debian's +dfsg sources drop the bundled jQuery files (Debian links its own); they only style
# Common Test's HTML logs, so empty stand-ins let `make install` go through.
for js in jquery-latest.js jquery.tablesorter.min.js; do
  [[ -e lib/common_test/priv/$js ]] || : >"lib/common_test/priv/$js"
done
make install
"$PREFIX/bin/erl" -noshell -eval 'io:format("built OTP ~s in ~s~n", [erlang:system_info(otp_release), code:root_dir()]), halt().'
