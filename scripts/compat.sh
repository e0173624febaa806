#!/usr/bin/env bash
# EUnit and Common Test with the package's own beams (built on OTP 25 by `make`) on other OTP
# installations: `make compat OTP_ROOTS="/opt/otp-26 /opt/otp-27"` (see docs/compat.md).
#
#   scripts/compat.sh PACKAGE OTP_ROOT...
#
# For each OTP_ROOT (a directory with bin/erl, bin/erlc, bin/ct_run): the package is unpacked
# under _build/compat/otp-<rel>/plugins as EMQX would, the test sources (suites, helpers,
# stand-ins) are compiled there with that OTP's erlc, and EUnit and ct_run run with the package's
# ebin (not recompiled) on the code path. The arm64 suite is left out (it runs its own Debian
# OTP 25). Prints one result line per OTP and exits non-zero when any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PACKAGE=${1:?usage: scripts/compat.sh PACKAGE OTP_ROOT...}
shift
[[ $# -gt 0 ]] || { echo "compat: no OTP_ROOTS given (make compat OTP_ROOTS=\"/opt/otp-27 ...\")" >&2; exit 2; }
ROOT=$PWD
status=0
summary=()
for OTP in "$@"; do
  ERL=$OTP/bin/erl
  [[ -x $ERL ]] || { echo "compat: $ERL not found" >&2; status=1; summary+=("$OTP: not an OTP installation"); continue; }
  REL=$("$ERL" -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().')
  W=$ROOT/_build/compat/otp-$REL
  rm -rf "$W"
  mkdir -p "$W/plugins" "$W/test" "$W/logs"
  tar -xzf "$PACKAGE" -C "$W/plugins"
  EBIN=$(ls -d "$W"/plugins/*/emqx_guard-*/ebin)
  # the test tree (suites need their data dirs and fixtures beside them), compiled by this OTP
  cp -R test/. "$W/test/"
  # compiled from a directory beside test/: erlc writes ?FILE relative to its working directory
  # when the file lies below it, and the suites find their fixtures next to ?FILE whatever
  # directory Common Test runs a case in
  ( cd "$W/logs" &&
    "$OTP/bin/erlc" +debug_info +warnings_as_errors +nowarn_export_all -DTEST -pa "$EBIN" -o "$W/test" \
      "$W"/test/*.erl "$W"/test/standins/*.erl ) || { status=1; summary+=("OTP $REL: test sources do not compile"); continue; }
  EUNIT_MODS=$(cd "$W/test" && ls ./*_tests.erl | sed 's|^\./||; s|\.erl$||' | paste -sd, -)
  echo "==> OTP $REL ($OTP): EUnit"
  "$ERL" -noshell -pa "$EBIN" -pa "$W/test" -eval "
      case eunit:test([$EUNIT_MODS], [verbose]) of ok -> halt(0); _ -> halt(1) end." \
    >"$W/eunit.log" 2>&1
  eunit_rc=$?
  eunit_line=$(grep -E "All [0-9]+ tests passed|Failed: [0-9]+" "$W/eunit.log" | tail -1)
  echo "==> OTP $REL ($OTP): Common Test"
  SUITES=$(cd "$W/test" && ls ./*_SUITE.erl | sed 's|^\./||; s|\.erl$||' | grep -v '^emqx_guard_arm64_SUITE$')
  ( cd "$W" && EMQX_GUARD_PACKAGE=$PACKAGE "$OTP/bin/ct_run" -noshell -no_auto_compile -dir "$W/test" \
      -suite $SUITES -logdir "$W/logs" -pa "$EBIN" -pa "$W/test" ) >"$W/ct.log" 2>&1
  ct_rc=$?
  # one "TEST COMPLETE, N ok, M failed[, K skipped] of T test cases" line per suite: summed
  ct_line=$(grep -o "TEST COMPLETE, .* test cases" "$W/ct.log" | awk '
    { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^ok/) ok += $i; if ($(i+1) ~ /^failed/) f += $i;
                                  if ($(i+1) ~ /^skipped/) sk += $i } n++ }
    END { if (n) printf "%d suites: %d ok, %d failed, %d skipped", n, ok, f, sk }')
  [[ -n $ct_line ]] && grep -q "TEST COMPLETE, .* failed" "$W/ct.log" &&
    ! grep -q "TEST COMPLETE, [0-9]* ok, 0 failed" "$W/ct.log" && ct_rc=1
  [[ $eunit_rc -eq 0 && $ct_rc -eq 0 ]] || status=1
  summary+=("OTP $REL: EUnit ${eunit_line:-see $W/eunit.log}; CT ${ct_line:-see $W/ct.log}")
done
printf '%s\n' "${summary[@]}"
exit $status
