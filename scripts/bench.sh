#!/usr/bin/env bash
# `make bench`: figures for the NIF (benchmarks, not tests: nothing here passes or fails on time).
#   1. next_fires per call through the NIF from Erlang vs the same calls in pure Rust;
#   2. verify on a ~1 GiB export tarball (about 5 GiB of compressible text, like a real export's
#      mnesia dumps) vs `gzip -t` on the same file, with peak memory;
#   3. prune of a directory of 100,000 export files vs `ls | sort | head -n -5 | xargs rm`;
#      3c. the retention decision (pure Rust) for 100,000 backups under a full restic-style policy
#      vs keep-last alone;
#   4. off-site upload and fetch of one large export, plain and age-encrypted, vs boto3 and rclone
#      on the same local S3 servers (s3s-fs and rclone serve s3 on 127.0.0.1; `make bench-deps`),
#      with peak RSS (scripts/bench_offsite.py), and the broker impact of an upload (4b).
# Every ratio compares figures measured in this run, on this machine.
# Knobs: BENCH_VERIFY_MIB (approximate compressed size of the verify tarball, default 1024; the
#        content is 5 times that), BENCH_PRUNE_FILES (default 100000),
#        BENCH_ITERATIONS (next_fires calls per case, default 20000), BENCH_TMPDIR (default $TMPDIR or /tmp),
#        BENCH_IMPACT_REPS (rounds of the broker-impact phases, default 3), BENCH_IO_LIMIT_MB (the
#        io_limit of its limited phase, default 50), BENCH_ERL_FLAGS (VM flags for a second impact
#        run printed beside the first, e.g. "+sbwt none +sbwtdcpu none +sbwtdio none"; EMQX's own
#        vm.args sets none of these),
#        BENCH_OFFSITE_MIB (size of the export of the off-site figures, default 300),
#        BENCH_OFFSITE_ROUNDS (interleaved rounds of the off-site peers, default 3).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VERIFY_MIB=${BENCH_VERIFY_MIB:-1024}
PRUNE_FILES=${BENCH_PRUNE_FILES:-100000}
ITERATIONS=${BENCH_ITERATIONS:-20000}
IMPACT_REPS=${BENCH_IMPACT_REPS:-3}
IMPACT_LIMIT_MB=${BENCH_IO_LIMIT_MB:-50}
CARGO=${CARGO:-cargo}

EBIN=$ROOT/_build/default/lib/emqx_guard/ebin
NIF_SO=$ROOT/priv/$(uname -m)/emqx_guard_nif.so
if [[ ! -f $EBIN/emqx_guard_nif.beam || ! -f $NIF_SO ]]; then
  echo "bench: build first (make compile): need $EBIN/emqx_guard_nif.beam and $NIF_SO" >&2
  exit 1
fi

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/emqx_guard_bench.XXXXXX")
S3_PID=
cleanup() { [[ -n $S3_PID ]] && kill "$S3_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

echo "==> building the Rust bench examples and the Erlang bench module"
"$CARGO" build --release --locked -q -p guard_core --example bench_next_fires --example bench_verify \
  --example bench_gen_export --example bench_offsite --example bench_retention_policy
RUST_NF=$ROOT/target/release/examples/bench_next_fires
RUST_VERIFY=$ROOT/target/release/examples/bench_verify
RUST_GEN=$ROOT/target/release/examples/bench_gen_export
RUST_OFFSITE=$ROOT/target/release/examples/bench_offsite
RUST_POLICY=$ROOT/target/release/examples/bench_retention_policy
OFFSITE_MIB=${BENCH_OFFSITE_MIB:-300}
OFFSITE_ROUNDS=${BENCH_OFFSITE_ROUNDS:-3}
mkdir -p "$WORK/ebin"
erlc -o "$WORK/ebin" scripts/emqx_guard_bench.erl

# erl_bench ARGS...: run emqx_guard_bench:main/1 in a fresh node with the plugin's ebin.
erl_bench() {
  erl -noshell -pa "$EBIN" -pa "$WORK/ebin" -run emqx_guard_bench main "$@" </dev/null
}

# field NAME LINE: the value of NAME=value in a `key=value ...` line.
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

# ratio A B: A/B with 2 decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

now_ns() { date +%s%N; }
secs_since() { awk -v s="$1" -v e="$(now_ns)" 'BEGIN { printf "%.3f", (e - s) / 1e9 }'; }

have_time() { [[ -x /usr/bin/time ]]; }

echo
echo "== 1. next_fires: per call through the NIF from Erlang vs pure Rust ($ITERATIONS calls each)"
AFTER=1767225600000 # 2026-01-01T00:00:00Z; call i asks for fires after AFTER + i%1000 minutes
printf '%-18s %-16s %3s %12s %12s %8s  %s\n' expr zone n "erlang ns" "rust ns" ratio result
while IFS='|' read -r expr zone n; do
  erl_line=$(erl_bench next_fires "$ITERATIONS" "$expr" "$zone" "$AFTER" "$n")
  rust_line=$("$RUST_NF" "$ITERATIONS" "$expr" "$zone" "$AFTER" "$n")
  e_ns=$(field ns_per_call "$erl_line")
  r_ns=$(field ns_per_call "$rust_line")
  printf '%-18s %-16s %3s %12s %12s %8s  %s\n' "$expr" "$zone" "$n" "$e_ns" "$r_ns" \
    "$(ratio "$e_ns" "$r_ns")x" "${erl_line#*result=}"
done <<'CASES'
*/15 * * * *|UTC|1
0 2 * * *|Europe/Berlin|3
0 22 * * 1-5|America/New_York|10
0 0 29 2 *|Europe/Berlin|3
0 0 30 2 *|UTC|1
CASES

echo
# The content: text like a real export's mnesia table dumps (Erlang terms with random ids,
# topics, numbers and timestamps), which gzip -6 (its default level) compresses
# about 5 times, so inflating it costs what inflating a real export costs.
# (/dev/urandom content would be stored, not deflated, and inflating it would be nearly free.)
PARTS=4
PART_MIB=$(((VERIFY_MIB * 5 + PARTS - 1) / PARTS))
echo "== 2. verify on a ~${VERIFY_MIB} MiB export tarball ($((PART_MIB * PARTS)) MiB of text) vs gzip -t"
BASE=emqx-export-2026-01-01-00-00-00.000
SRC=$WORK/src
mkdir -p "$SRC/$BASE/mnesia"
printf 'edition = ce\nversion = "5.3.2"\n' >"$SRC/$BASE/META.hocon"
printf 'node {\n  name = "emqx@127.0.0.1"\n  cookie = "emqxsecretcookie"\n}\n' >"$SRC/$BASE/cluster.hocon"
echo "   generating $PARTS table dumps of $PART_MIB MiB of text and packing them with gzip -6..."
members=("$BASE/META.hocon" "$BASE/cluster.hocon")
for i in $(seq 1 "$PARTS"); do
  "$RUST_GEN" "$SRC/$BASE/mnesia/emqx_table_$i" "$PART_MIB" "$i"
  members+=("$BASE/mnesia/emqx_table_$i")
done
CONTENT=$(du -cb "$SRC/$BASE"/META.hocon "$SRC/$BASE"/cluster.hocon "$SRC/$BASE"/mnesia/* | awk 'END { print $1 }')
# Files only, no directory entries: the layout of a real EMQX export.
tar -C "$SRC" -cf - "${members[@]}" | gzip -6 >"$WORK/$BASE.tar.gz"
rm -rf "$SRC"
TARBALL=$WORK/$BASE.tar.gz
SIZE=$(stat -c %s "$TARBALL")
echo "   file: $(awk -v s="$SIZE" 'BEGIN { printf "%.1f MiB", s / 1048576 }') compressed," \
  "$(awk -v s="$CONTENT" 'BEGIN { printf "%.1f MiB", s / 1048576 }') of content" \
  "(ratio $(ratio "$CONTENT" "$SIZE"))"
cat "$TARBALL" >/dev/null # same (warm) page cache for every reader

if have_time; then
  gz_out=$( { /usr/bin/time -f 'TIME %e %M' gzip -t "$TARBALL"; } 2>&1)
  gz_secs=$(awk '/^TIME/ { print $2 }' <<<"$gz_out")
  gz_kib=$(awk '/^TIME/ { print $3 }' <<<"$gz_out")
else
  t0=$(now_ns); gzip -t "$TARBALL"; gz_secs=$(secs_since "$t0"); gz_kib=unknown
fi
rust_line=$("$RUST_VERIFY" "$TARBALL")
rust_secs=$(field seconds "$rust_line")
rust_kib=$(field peak_rss_kib "$rust_line")
erl_line=$(erl_bench verify "$TARBALL")
erl_secs=$(field seconds "$erl_line")
printf '   %-34s %8s s   peak RSS %s KiB\n' "gzip -t" "$gz_secs" "$gz_kib"
printf '   %-34s %8s s   peak RSS %s KiB (VmHWM of a process running only verify)\n' \
  "verify, pure Rust (bench_verify)" "$rust_secs" "$rust_kib"
printf '   %-34s %8s s\n' "verify, NIF job from Erlang" "$erl_secs"
echo "   result: ${rust_line#*result=}" | cut -c1-120
echo "   ratio verify(NIF)/gzip -t: $(ratio "$erl_secs" "$gz_secs")x   verify(Rust)/gzip -t: $(ratio "$rust_secs" "$gz_secs")x"
echo "   (verify also hashes the file with SHA-256 and walks the tar; gzip -t only inflates and checks the CRC)"

echo
echo "== 2b. broker impact: lateness of a process waking every 1 ms on a normal scheduler"
echo "   while verify_async/2 runs on a SCHED_IDLE / nice 19 thread (async), idle (as long as async, at least"
echo "   5 s), and async with io_limit ${IMPACT_LIMIT_MB}MB/s; interleaved, $IMPACT_REPS rounds, median of the p99s."
echo "   Same file, same node, one run; the VM runs with ERTS defaults as EMQX's vm.args leaves them (no +sbwt"
echo "   flags). Target: async p99 <= 1.2x idle p99."
echo "   machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on it shows in every phase)"
impact=$(erl_bench impact "$TARBALL" "$IMPACT_REPS" $((IMPACT_LIMIT_MB * 1000000)))
grep '^phase=' <<<"$impact" | sed 's/^/   /'
grep '^p99_' <<<"$impact" | sed 's/^/   /'
if [[ -n ${BENCH_ERL_FLAGS:-} ]]; then
  echo "   the same with BENCH_ERL_FLAGS=$BENCH_ERL_FLAGS (not EMQX's defaults):"
  impact=$(ERL_FLAGS="$BENCH_ERL_FLAGS" erl_bench impact "$TARBALL" "$IMPACT_REPS" $((IMPACT_LIMIT_MB * 1000000)))
  grep '^p99_' <<<"$impact" | sed 's/^/   /'
fi
rm -f "$TARBALL"

echo
echo "== 3. prune to the newest 5 of $PRUNE_FILES export files vs ls | sort | head -n -5 | xargs rm"
mkdir -p "$WORK/nif" "$WORK/shell"
# Distinct export names, one millisecond apart, newest last in name order.
awk -v n="$PRUNE_FILES" 'BEGIN {
  for (i = 0; i < n; i++)
    printf "emqx-export-2026-01-01-%02d-%02d-%02d.%03d.tar.gz\n",
      int(i / 3600000) % 24, int(i / 60000) % 60, int(i / 1000) % 60, i % 1000
}' >"$WORK/names"
(cd "$WORK/nif" && xargs touch <"$WORK/names")
(cd "$WORK/shell" && xargs touch <"$WORK/names")
# prune counts only exports that verify toward the 5 it keeps (it verifies newest first and
# deletes everything older without verifying it): the newest 5 are small real exports, the
# older ones empty files.
tail -n 5 "$WORK/names" | while read -r name; do
  top=${name%.tar.gz}
  mkdir -p "$WORK/mini/$top"
  printf 'edition = ce\nversion = "5.3.2"\n' >"$WORK/mini/$top/META.hocon"
  : >"$WORK/mini/$top/cluster.hocon"
  tar -C "$WORK/mini" -cf - "$top/META.hocon" "$top/cluster.hocon" | gzip -6 >"$WORK/nif/$name"
  cp "$WORK/nif/$name" "$WORK/shell/$name"
done
rm -rf "$WORK/mini"
erl_line=$(erl_bench prune "$WORK/nif" 5)
nif_secs=$(field seconds "$erl_line")
t0=$(now_ns)
(cd "$WORK/shell" && ls | sort | head -n -5 | xargs rm)
sh_secs=$(secs_since "$t0")
nif_left=$(find "$WORK/nif" -type f | wc -l)
sh_left=$(find "$WORK/shell" -type f | wc -l)
printf '   %-34s %8s s   (%s; %s files left)\n' "prune (NIF from Erlang)" "$nif_secs" \
  "$(field deleted "$erl_line") deleted, $(field failed "$erl_line") failed" "$nif_left"
printf '   %-34s %8s s   (%s files left)\n' "ls | sort | head -n -5 | xargs rm" "$sh_secs" "$sh_left"
if [[ $nif_left != "$sh_left" ]] || ! diff -q <(ls "$WORK/nif") <(ls "$WORK/shell") >/dev/null; then
  echo "   WARNING: the two methods kept different files" >&2
fi
echo "   ratio prune(NIF)/shell: $(ratio "$nif_secs" "$sh_secs")x"

echo
echo "== 3b. bytes retention reads with keep 5: without verification records, then trusting them"
echo "   $(erl_bench retention "$WORK/nif" 5)"
echo "   (prune also checks each name, stats every file, verifies the newest until 5 pass, and re-checks each"
echo "    one right before unlinking it)"

echo
FULL_POLICY="last=5 hourly=24 daily=7 weekly=4 monthly=12 yearly=5 within=2d"
echo "== 3c. the retention decision for $PRUNE_FILES backups (one an hour, Europe/Berlin): the full policy"
echo "   \"$FULL_POLICY\" vs last=5 alone, and vs keep-last's own rule (decide, keep 5)"
policy_line=$("$RUST_POLICY" "$PRUNE_FILES" Europe/Berlin "$FULL_POLICY")
full_ms=$(field full_ms "$policy_line")
last_ms=$(field last_ms "$policy_line")
decide_ms=$(field decide_ms "$policy_line")
printf '   %-34s %10s ms   (%s kept, %s of them unverified ones inside the rules'"'"' 5 years)\n' "plan, full policy" \
  "$full_ms" "$(field kept_full "$policy_line")" "$(field unverified_full "$policy_line")"
printf '   %-34s %10s ms   (%s kept)\n' "plan, last=5" "$last_ms" "$(field kept_last "$policy_line")"
printf '   %-34s %10s ms\n' "decide, keep 5 (no times)" "$decide_ms"
echo "   ratio full policy/last=5: $(ratio "$full_ms" "$last_ms")x   full policy/decide: $(ratio "$full_ms" "$decide_ms")x"
echo "   (plan places every backup in the zone's calendar, from its run start or its name's wall time, and sorts"
echo "    them; decide only walks a list already in order: the zone work is what the policy costs)"

echo
echo "== 4. off-site transfers of a ${OFFSITE_MIB} MiB export vs the best S3 clients, on s3s-fs and rclone serve s3"
echo "   emqx_guard: guard_core's offsite::upload / offsite::fetch, the functions the NIF's jobs run, called"
echo "   by the example bench_offsite (one process per transfer, so its peak RSS is the transfer's own)."
echo "   Upload: HEAD, one read of the file (hashed, encrypted when +age), 4 parts of 16 MiB in flight,"
echo "   a checksum per request, the metadata copy onto itself, HEAD check. Fetch: HEAD, 8 ranges of 8 MiB in"
echo "   flight, hashed as they come and verified (plain: written, +age: decrypted, written, verified) as they"
echo "   come, fsync, stored SHA-256 checked (nothing decrypted counts before), linked into place."
echo "   Peers: boto3 upload_file/download_file, rclone copyto, their defaults. $OFFSITE_ROUNDS interleaved rounds,"
echo "   medians; the export is incompressible data (verification then costs what inflating stored blocks costs;"
echo "   section 2 shows it for a compressible one). Targets: <= 1.00x best peer; +age <= 1.15x plain;"
echo "   peak RSS <= 4 x 16 MiB + 16 MiB = 80 MiB."
NAME=emqx-export-2026-01-01-00-00-00.000
mkdir -p "$WORK/offsite/$NAME/mnesia"
printf 'edition = ce\nversion = "5.3.2"\n' >"$WORK/offsite/$NAME/META.hocon"
: >"$WORK/offsite/$NAME/cluster.hocon"
head -c $((OFFSITE_MIB * 1048576)) /dev/urandom >"$WORK/offsite/$NAME/mnesia/emqx_retainer_message"
tar -C "$WORK/offsite" -cf - "$NAME/META.hocon" "$NAME/cluster.hocon" "$NAME/mnesia/emqx_retainer_message" \
  | gzip -1 >"$WORK/$NAME.tar.gz"
rm -rf "$WORK/offsite"
cat "$WORK/$NAME.tar.gz" >/dev/null # the same warm page cache for every tool
for server in s3s-fs rclone; do
  python3 scripts/bench_offsite.py "$server" "$WORK/$NAME.tar.gz" "$OFFSITE_ROUNDS" "$RUST_OFFSITE" \
    test/emqx_guard_nif_SUITE_data/offsite_recipient.txt test/emqx_guard_nif_SUITE_data/offsite_identity.txt \
    "$WORK" | sed 's/^/   /'
done

echo
echo "== 4b. broker impact of an off-site upload: the 1 ms probe idle, during offsite_upload_async/3 (the NIF"
echo "   job of the off-site queue) and during the same with io_limit ${IMPACT_LIMIT_MB}MB/s; interleaved, $IMPACT_REPS rounds,"
echo "   median of the p99s. The server (s3s-fs on 127.0.0.1) runs at SCHED_IDLE/nice 19, as if it were elsewhere;"
echo "   what remains is the kernel's loopback and disk work, which no thread priority holds back."
echo "   Target: within verify's bound, upload p99 <= 1.2x idle p99."
S3S=${S3S_FS:-$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")}
mkdir -p "$WORK/s3/bench"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chrt --idle 0 nice -n 19 "$S3S" --host 127.0.0.1 --port "$PORT" --access-key bench-access --secret-key bench-secret-key \
  "$WORK/s3" >/dev/null 2>&1 &
S3_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
impact=$(erl_bench impact_upload "http://127.0.0.1:$PORT" bench-access bench-secret-key "$WORK/$NAME.tar.gz" \
  "$IMPACT_REPS" $((IMPACT_LIMIT_MB * 1000000)))
kill "$S3_PID" 2>/dev/null; wait "$S3_PID" 2>/dev/null || true; S3_PID=
grep '^phase=' <<<"$impact" | sed 's/^/   /'
grep '^p99_' <<<"$impact" | sed 's/^/   /'
rm -rf "$WORK/s3" "$WORK/$NAME.tar.gz"
