%% @doc The terms the NIF takes and gives, named for the specs of `emqx_guard_nif' (which
%% re-exports each under the same name: the rest of the plugin writes `emqx_guard_nif:record()').
%% Types only, no functions: what each function does with them is said in `emqx_guard_nif'.
-module(emqx_guard_nif_types).

-export_type([error/0, unix_ms/0, backup/0, failed_backup/0, verified/0, record/0, opts/0, job/0]).
-export_type([prune_report/0, progress/0, listing/0, mail_config/0]).
-export_type([offsite_config/0, remote_backup/0, offsite_uploaded/0, offsite_prune_report/0]).
-export_type([offsite_check/0, offsite_fetched/0]).
-export_type([policy/0, rules/0, fate/0, offsite_fate/0]).

%% A failure: a stable reason atom (each function's doc lists its own; callers may match on
%% them) and one line a person understands, never holding a secret.
-type error() :: {error, {Reason :: atom(), Detail :: binary()}}.

%% UTC milliseconds since the Unix epoch.
-type unix_ms() :: integer().

%% An export file in the backup directory: a regular file named
%% `emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz' (see `emqx_guard_nif:is_export_name/1'), its path
%% byte for byte, its size and modification time.
-type backup() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    mtime := unix_ms()
}.

%% A backup with one line saying why it was not deleted or does not count.
-type failed_backup() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    mtime := unix_ms(),
    error := binary()
}.

%% What verification found in an export: its tar entries and their bytes, `version' and
%% `edition' from META.hocon, and the SHA-256 of the whole file (lowercase hex).
-type verified() :: #{
    entries := non_neg_integer(),
    bytes := non_neg_integer(),
    version := binary(),
    edition := binary(),
    sha256 := binary()
}.

%% A verification record: the verdict of one full read (`result'; a good one also says what it
%% found, the five keys of `verified()'; a bad one has them `undefined') tied to the identity of
%% the file it read: name, size, mtime in nanoseconds, inode and device. Retention trusts it
%% while all five match the file: appended or truncated changes size, rewritten in place changes
%% mtime_ns, replaced (even given the old mtime) changes inode; a same-size rewrite in place with
%% the mtime set back to the old nanosecond is invisible, which is what a full re-check on demand
%% is for. ctime is left out (chmod and rename change it). Passed back in, only the identity and
%% `result' are read (else `bad_record'); other keys are ignored, so the caller may add its own
%% (the plugin's: `made_at', when the backup was made, see `emqx_guard_verifications').
-type record() :: #{
    name := binary(),
    size := non_neg_integer(),
    mtime_ns := integer(),
    inode := non_neg_integer(),
    dev := non_neg_integer(),
    verified_at := unix_ms(),
    result := ok | error(),
    sha256 := binary() | undefined,
    version := binary() | undefined,
    edition := binary() | undefined,
    entries := non_neg_integer() | undefined,
    bytes := non_neg_integer() | undefined,
    made_at => unix_ms()
}.

%% Options of a job: `io_limit', the bytes per second it reads at most (default infinity).
%% Anything else is `bad_opts'; not a map is `badarg'.
-type opts() :: #{io_limit => pos_integer() | infinity}.

%% A background job: a resource term (opaque; the terms of one job compare equal, so a `receive'
%% can match it). The job's messages carry a term equal to it.
-type job() :: reference().

%% Retention's result: the exports deleted (DryRun: that would be), those whose deletion failed,
%% those newer than the oldest kept one that do not verify (neither counted nor deleted), each
%% list oldest first; the records of the exports read by this call (good and bad, newest first;
%% none for a check that reached no verdict) and the bytes it read.
-type prune_report() :: #{
    deleted := [backup()],
    failed := [failed_backup()],
    skipped_unverified := [failed_backup()],
    verified := [record()],
    bytes_read := non_neg_integer(),
    plan := [fate()]
}.

%% A retention policy parsed (`emqx_guard_nif:retention_policy/1'): its canonical text (the rules
%% that are on, in the order below: `last=3 daily=7 within=2d'), each count (0: off) and
%% `within' as text (`0h': off).
-type policy() :: #{
    text := binary(),
    last := non_neg_integer(),
    hourly := non_neg_integer(),
    daily := non_neg_integer(),
    weekly := non_neg_integer(),
    monthly := non_neg_integer(),
    yearly := non_neg_integer(),
    within := binary()
}.

%% What retention decides by (the `Keep' of the prune jobs; a bare count N is `last=N'): the
%% policy (its text, or a count), the zone whose calendar periods it counts (an IANA name or
%% `local'), the export names never deleted (`pins'), the recorded start of the run that made
%% each backup (`made', Unix ms by export name; the others are placed by the wall time in their
%% name, read in the node's own zone) and the present (`now': a backup made after it is never
%% the newest one `within' counts back from).
-type rules() :: #{
    policy := binary() | pos_integer(),
    zone := binary(),
    pins => [binary()],
    made => #{binary() => unix_ms()},
    now => unix_ms()
}.

%% An export with what retention's decision made of it: `keep', and `why' in one line (the
%% rule(s) that keep it, e.g. `last #1, daily 2026-11-30, weekly 2026-W49', `pinned',
%% `unverified: kept, counts for nothing'; or `delete', with why when it is not a plain policy
%% drop); `error' is the verifier's line for one that does not verify, else `undefined'.
-type fate() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    mtime := unix_ms(),
    keep := boolean(),
    why := binary(),
    error := binary() | undefined
}.

%% How far retention has got: exports read so far and their sizes, exports still to read at
%% least (the decision is final after them if each verifies) and their sizes, bytes read; the
%% `record' of the export just read when its check reached a verdict.
-type progress() :: #{
    checked := non_neg_integer(),
    checked_bytes := non_neg_integer(),
    remaining := non_neg_integer(),
    remaining_bytes := non_neg_integer(),
    bytes_read := non_neg_integer(),
    record => record()
}.

%% The exports of a directory, newest first, each with its `verification': the caller's own
%% record term when one matches its identity (extra keys kept), else a record made now (also in
%% `verified'), else why the check reached no verdict (`not_found', `io', `changed').
-type listing() :: #{
    backups := [#{
        name := binary(),
        path := binary(),
        size := non_neg_integer(),
        mtime := unix_ms(),
        verification := record() | error()
    }],
    verified := [record()],
    bytes_read := non_neg_integer()
}.

%% The SMTP settings of `emqx_guard_nif:send_mail/3'. Required: `server', `port' (1..65535),
%% `tls', `from', `to' (at least one). Optional: `tls_verify' (default true), `ca_file' (trusted
%% besides the system's roots), `username' with `password' (both or neither), `timeout_ms'
%% (default 30000: the connect and each read or write), `deadline_ms' (default 120000: the whole
%% session). `undefined' is unset. A missing or malformed key is `bad_config' naming the key; the
%% password never appears in an error.
-type mail_config() :: #{
    server := binary(),
    port := 1..65535,
    tls := none | starttls | tls | binary(),
    from := binary(),
    to := [binary(), ...],
    tls_verify => boolean(),
    ca_file => binary() | undefined,
    username => binary() | undefined,
    password => binary() | undefined,
    timeout_ms => pos_integer(),
    deadline_ms => pos_integer()
}.

%% Where off-site copies go. Required: `bucket', `access_key', `secret_key'. Optional, with their
%% defaults: `prefix' (`<<>>'; no leading or trailing `/'), `region' (`<<"us-east-1">>'),
%% `endpoint' (`http(s)://host[:port]'; AWS S3 of the region), `path_style' (false: the bucket in
%% the host name), `tls_verify' (true), `ca_file' (trusted besides the system's roots),
%% `recipient' (an age X25519 recipient `age1…': objects are encrypted to it and named
%% `<export>.age'), `part_size' (16 MiB; 5 MiB to 5 GiB: an object up to it is one PUT, a larger
%% one a multipart upload, and downloads go in ranges of it), `concurrency' (4; 1 to 64: parts of
%% an upload or ranges of a download in flight at once; a transfer holds at most
%% `concurrency * part_size' bytes of the object in memory), `connect_timeout_ms' (10000),
%% `timeout_ms' (120000: per request of an upload, a listing, a copy; a download has one overall
%% deadline of this much per `part_size' of the object, plus one, and fails after this long
%% without a byte), `max_retries' (3, exponential backoff). Booleans may be `<<"on">>'/`<<"off">>'; `undefined' is the default. A
%% wrong value is `bad_config' naming the key; the secret key never appears in any Detail.
-type offsite_config() :: #{
    bucket := binary(),
    access_key := binary(),
    secret_key := binary(),
    prefix => binary(),
    region => binary(),
    endpoint => binary() | undefined,
    path_style => boolean() | binary(),
    tls_verify => boolean() | binary(),
    ca_file => binary() | undefined,
    recipient => binary() | undefined,
    part_size => pos_integer(),
    concurrency => pos_integer(),
    connect_timeout_ms => pos_integer(),
    timeout_ms => pos_integer(),
    max_retries => non_neg_integer()
}.

%% An off-site backup: an object directly under the prefix named as an export, optionally with
%% `.age'; `mtime' is its last modification.
-type remote_backup() :: #{
    name := binary(),
    export_name := binary(),
    key := binary(),
    size := non_neg_integer(),
    mtime := unix_ms(),
    encrypted := boolean()
}.

%% An upload: the object's name and key, `sha256'/`source_size' of the local export,
%% `stored_sha256'/`size' of the object's bytes as stored (the age ciphertext when encrypted),
%% `parts' (0 for a single PUT), `reused' (the object already held this export: nothing sent).
-type offsite_uploaded() :: #{
    name := binary(),
    key := binary(),
    size := non_neg_integer(),
    source_size := non_neg_integer(),
    sha256 := binary(),
    stored_sha256 := binary(),
    encrypted := boolean(),
    parts := non_neg_integer(),
    reused := boolean()
}.

%% Remote retention's result: the objects kept (newest first), deleted (DryRun: that would be)
%% and those whose deletion failed, with why (oldest first).
-type offsite_prune_report() :: #{
    kept := [remote_backup()],
    deleted := [remote_backup()],
    failed := [#{error := binary(), _ => _}],
    plan := [offsite_fate()]
}.

%% An off-site object with what retention's decision made of its export (as `fate()').
-type offsite_fate() :: #{
    name := binary(),
    export_name := binary(),
    key := binary(),
    size := non_neg_integer(),
    mtime := unix_ms(),
    encrypted := boolean(),
    keep := boolean(),
    why := binary()
}.

%% A check of a fetched backup, in the order its verdict counts: the downloaded bytes against the
%% stored SHA-256 and size recorded at upload (decryption runs alongside the download; nothing it
%% produced counts before the stored SHA-256 matched), age's authentication, the
%% export against its recorded SHA-256 and size, and verification. The first and third need
%% the object's metadata (an object uploaded by another tool has none).
-type offsite_check() :: stored_sha256 | age | export_sha256 | verify.

%% A fetched backup: the file (its export name, mode 0600) and the checks it passed.
-type offsite_fetched() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    object_size := non_neg_integer(),
    encrypted := boolean(),
    verified := verified(),
    checked_by := [offsite_check()]
}.
