#!/usr/bin/env bash
# Builds the EMQX plugin package from a compiled tree (the Makefile's `package` target runs it after
# `rebar3 compile` and `make nif`):
#
#   _build/plugin/emqx_guard-<vsn>.tar.gz         the package EMQX installs
#   _build/plugin/emqx_guard-<vsn>.tar.gz.sha256  its SHA-256, lowercase hex only (as emqx_plugrel writes it)
#
# Layout (what EMQX's plugin installer expects; it unpacks with erl_tar in memory, so modes and
# symlinks are lost and every entry must be a plain file under the one top directory):
#
#   emqx_guard-<vsn>/release.json
#   emqx_guard-<vsn>/README.md
#   emqx_guard-<vsn>/emqx_guard-<appvsn>/ebin/*.beam, emqx_guard.app
#   emqx_guard-<vsn>/emqx_guard-<appvsn>/priv/<arch>/emqx_guard_nif.so for each of NIF_ARCHS
#                                                (x86_64 aarch64), and the plugin config files
#
# Also _build/plugin/build_info.eterm: the OTP release and compiler version of the erl that built
# it (the tests compare release.json and the packaged beams with it; not part of the package).
#
# The archive is reproducible: entries sorted by name, owner/group 0, modes normalized, mtimes set to
# the last commit's time (or SOURCE_DATE_EPOCH), gzip without a name or time stamp.
#
# Usage: scripts/package.sh VSN   (VSN is the vsn of erlang/emqx_guard.app.src)
# Environment: NIF_ARCHS (default "x86_64 aarch64"), NIF_GLIBC (default 2.17; written to release.json)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "package.sh: $*" >&2; exit 1; }

VSN=${1:-}
[[ -n $VSN ]] || die "usage: scripts/package.sh VSN"
APP=emqx_guard
LIB=_build/default/lib/$APP
EBIN=$LIB/ebin
PRIV=$LIB/priv # rebar3 makes this a symlink to ./priv: it is dereferenced below
OUT=_build/plugin
NAME_VSN=$APP-$VSN

[[ -f $EBIN/$APP.app ]] || die "$EBIN/$APP.app not found: run rebar3 compile first"
[[ -d $PRIV ]] || PRIV=priv
NIF_ARCHS=${NIF_ARCHS:-x86_64 aarch64}
NIF_GLIBC=${NIF_GLIBC:-2.17}
for arch in $NIF_ARCHS; do
  [[ -f $PRIV/$arch/emqx_guard_nif.so ]] || die "$PRIV/$arch/emqx_guard_nif.so not found: run make nif first"
done
APPVSN=$(sed -n 's/.*{vsn, *"\([^"]*\)"}.*/\1/p' "$EBIN/$APP.app")
[[ $APPVSN == "$VSN" ]] || die "version $VSN differs from $EBIN/$APP.app's vsn '$APPVSN' (stale build?)"
[[ $APP != *-* ]] || die "the plugin name must not contain '-' (EMQX splits name and version there)"

if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && git rev-parse -q --verify HEAD >/dev/null; then
  GIT_REF=$(git rev-parse HEAD)
  DATE=$(git log -1 --format=%cd --date=format:%Y-%m-%d)
  EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
  REPO=$(git remote get-url origin 2>/dev/null || true)
else
  GIT_REF=unknown
  DATE=$(date -u +%Y-%m-%d)
  EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)}
  REPO=
fi
# The repo URL shown on the dashboard: EMQX_GUARD_REPO, else origin when it is a web-reachable
# URL (git@host:owner/name.git becomes https://host/owner/name; a local clone's path is not used).
if [[ $REPO =~ ^git@([^:]+):(.+)$ ]]; then REPO="https://${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"; fi
[[ $REPO =~ ^https?:// ]] || REPO=
REPO=${EMQX_GUARD_REPO:-${REPO%.git}}
[[ -n $REPO ]] || REPO=unknown

mkdir -p "$OUT"
STAGE=$(mktemp -d "$OUT/.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
TOP=$STAGE/$NAME_VSN
APPDIR=$TOP/$APP-$APPVSN
mkdir -p "$APPDIR/ebin" "$APPDIR/priv"

cp "$EBIN"/*.beam "$EBIN/$APP.app" "$APPDIR/ebin/"
# priv/: the plugin's files and the libraries of NIF_ARCHS (nothing else, e.g. no stale library)
find -L "$PRIV" -maxdepth 1 -type f ! -name '*.so' -exec cp -L {} "$APPDIR/priv/" \;
for arch in $NIF_ARCHS; do
  install -D -m 0644 "$PRIV/$arch/emqx_guard_nif.so" "$APPDIR/priv/$arch/emqx_guard_nif.so"
done
[[ -f README.md ]] && cp README.md "$TOP/README.md"
escript scripts/release_json.escript "$TOP/release.json" "$EBIN/$APP.app" "$VSN" "$APPDIR/priv" \
  "$GIT_REF" "$DATE" "$REPO" "$NIF_GLIBC" "$OUT/build_info.eterm"

bad=$(find "$TOP" ! -type f ! -type d)
[[ -z $bad ]] || die "not a plain file or directory: $bad"

TARBALL=$OUT/$NAME_VSN.tar.gz
( cd "$STAGE" &&
  LC_ALL=C tar --sort=name --format=ustar --owner=0 --group=0 --numeric-owner \
    --mtime="@$EPOCH" --mode='u+rwX,go+rX,go-w' -cf - "$NAME_VSN" ) | gzip -n -9 >"$STAGE/pkg.tar.gz"

# Every entry must lie under the top directory, and be a plain file or a directory.
while read -r perms _ _ _ _ path _; do
  [[ $perms == -* || $perms == d* ]] || die "unexpected entry type: $perms $path"
  [[ $path == "$NAME_VSN/"* ]] || die "entry outside $NAME_VSN/: $path"
  [[ $path != *..* ]] || die "entry with '..': $path"
done < <(tar -tvzf "$STAGE/pkg.tar.gz")

mv -f "$STAGE/pkg.tar.gz" "$TARBALL"
sha256sum "$TARBALL" | cut -d' ' -f1 | tr -d '\n' >"$TARBALL.sha256"
echo "==> $TARBALL ($(stat -c %s "$TARBALL") bytes, sha256 $(cat "$TARBALL.sha256"))"
