#!/usr/bin/env bash
# Prints the URI of Debian's archive as this machine's own apt sources name it, for the scripts
# that fetch from Debian (scripts/build_otp.sh, scripts/arm64_root.sh), so no host is written into
# them: DEBIAN_ARCHIVE when it is set, else the first entry of /etc/apt/sources.list and
# /etc/apt/sources.list.d/*.list (one-line form) or *.sources (deb822 form) that is Debian's own
# archive for this release: its suite is the release's codename (VERSION_CODENAME in
# /etc/os-release), its components include `main', and it is signed by Debian's archive keyring
# (or names no key). Exits 2 with one line on stderr when there is none.
#
#   scripts/debian_archive.sh
set -euo pipefail
if [[ -n ${DEBIAN_ARCHIVE:-} ]]; then
  echo "$DEBIAN_ARCHIVE"
  exit 0
fi
CODENAME=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
shopt -s nullglob
LISTS=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
SOURCES=(/etc/apt/sources.list.d/*.sources)
URI=$(
  {
    # one-line form: deb [options] URI suite component...
    for f in "${LISTS[@]}"; do [[ -f $f ]] && cat "$f"; done |
      awk -v rel="$CODENAME" '
        $1 == "deb" || $1 == "deb-src" {
          opts = ""; i = 2
          if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
          uri = $i; suite = $(i + 1); main = 0
          for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
          keyed = (opts !~ /signed-by=/ || opts ~ /debian-archive-keyring/)
          if (suite == rel && main && keyed) print uri
        }'
    # deb822 form: stanzas of Types/URIs/Suites/Components/Signed-By
    for f in "${SOURCES[@]}"; do cat "$f"; echo; done |
      awk -v rel="$CODENAME" '
        function flush() {
          if (uris != "" && (" " suites " ") ~ (" " rel " ") && (" " comps " ") ~ / main / && (signed == "" || signed ~ /debian-archive-keyring/) && enabled != "no") {
            split(uris, u, " "); print u[1]
          }
          uris = suites = comps = signed = enabled = ""
        }
        /^[[:space:]]*#/ { next }
        /^[[:space:]]*$/ { flush(); next }
        tolower($1) == "uris:" { $1 = ""; uris = $0 }
        tolower($1) == "suites:" { $1 = ""; suites = $0 }
        tolower($1) == "components:" { $1 = ""; comps = $0 }
        tolower($1) == "signed-by:" { $1 = ""; signed = $0 }
        tolower($1) == "enabled:" { enabled = tolower($2) }
        END { flush() }'
  } | head -1 | sed 's/^ *//; s:/*$::'
)
if [[ -z $URI || -z $CODENAME ]]; then
  echo "no Debian archive for this release (${CODENAME:-unknown}) in the apt sources; set DEBIAN_ARCHIVE=<its URI>" >&2
  exit 2
fi
echo "$URI"
