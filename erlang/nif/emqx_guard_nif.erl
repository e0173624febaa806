%% @doc Erlang face of the Rust core (`native/guard_nif`, built to `priv/<Arch>/emqx_guard_nif.so').
%%
%% The contract is the table in docs/design.md:
%% <ul>
%% <li>all binaries are UTF-8; paths are binaries taken byte for byte;</li>
%% <li>results are `{ok, Value}' or `{error, {Reason :: atom(), Detail :: binary()}}', where
%%     Detail is one line a person understands and Reason is one of the stable atoms listed in
%%     docs/design.md;</li>
%% <li>arguments of the wrong Erlang type raise `badarg';</li>
%% <li>`list_backups/1', `prune/4', `verify/1' and `disk_space/1' run on dirty IO schedulers, `next_fires/4' for
%%     more than 50 fire times on a dirty CPU scheduler, the others return quickly (microseconds)
%%     on a normal scheduler;</li>
%% <li>a panic in Rust raises the error `nif_panicked' and the node carries on.</li>
%% </ul>
%%
%% Loading: the package ships one library per architecture, `priv/<Arch>/emqx_guard_nif.so' with
%% Arch the first part of `erlang:system_info(system_architecture)' (`x86_64', `aarch64'). It is
%% looked for in `code:priv_dir(emqx_guard)' and then in `../priv' next to this module's beam (EMQX
%% loads a plugin by adding its ebin to the code path). If it cannot be loaded (none for this
%% architecture, or a broken one) the module still loads, and every function raises
%% `error({nif_not_loaded, Path, Reason})' naming the file (so the architecture looked for) and
%% the loader's reason.
%% The library supports the BEAM's upgrade callback, so the module can be purged and reloaded
%% in a running node (EMQX up to 5.8 reloads every beam of a plugin on restart).
-module(emqx_guard_nif).

-include_lib("kernel/include/logger.hrl").

-export([
    validate/1,
    next_fires/4,
    describe/1,
    resolve_zone/1,
    utc_offset/2,
    list_backups/1,
    send_mail/3,
    is_export_name/1,
    disk_space/1
]).

%% The probe of the panic contract: only a deliberate Rust panic can show that a panic becomes the
%% error `nif_panicked' and the node carries on, so its callers are the tests that show it. (The
%% library implements it: the function must exist in every build, and the compiler keeps only
%% what is exported or called.)
-export([panic_probe/0]).

%% Verification records and background jobs (issue 13).
-export([
    verify_async/2,
    prune_async/6,
    list_verified_async/3,
    cancel/1,
    cancel_all/0
]).

%% Off-site copies on S3-compatible object storage (issue 12): background jobs.
-export([
    offsite_upload_async/3,
    offsite_list_async/2,
    offsite_prune_async/4,
    offsite_fetch_async/5
]).

%% Exported for diagnostics and tests: where the library is looked for.
-export([library_path/0, architecture/0]).

-on_load(init/0).

-define(LIB, "emqx_guard_nif").
-define(LOAD_ERROR_KEY, {?MODULE, load_error}).
%% next_fires/4 asks a dirty CPU scheduler for more fire times than this.
-define(NORMAL_SCHEDULER_MAX_FIRES, 50).

-type reason() :: atom().
-type error() :: {error, {reason(), Detail :: binary()}}.
-type unix_ms() :: integer().
-type backup() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    mtime := unix_ms()
}.
-type failed_backup() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    mtime := unix_ms(),
    error := binary()
}.
-type verified() :: #{
    entries := non_neg_integer(),
    bytes := non_neg_integer(),
    version := binary(),
    edition := binary(),
    sha256 := binary()
}.

%% A verification's verdict tied to the identity of the file it read (name, size, mtime in
%% nanoseconds, inode, device). Retention trusts it while all five match the file on disk.
%% Passed back in, only the identity keys and `result' are read; other keys are ignored.
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
    bytes := non_neg_integer() | undefined
}.
%% io_limit: bytes per second read at most (default infinity).
-type opts() :: #{io_limit => pos_integer() | infinity}.
%% Opaque; the message `{emqx_guard_job, Job, Result}' carries a term equal to it.
-type job() :: reference().
-type prune_report() :: #{
    deleted := [backup()],
    failed := [failed_backup()],
    skipped_unverified := [failed_backup()],
    verified := [record()],
    bytes_read := non_neg_integer()
}.
%% What prune_async/6 says as it goes, in `{emqx_guard_job_progress, Job, progress()}': exports
%% read so far and their sizes, exports still to read at least (the decision is final after them
%% if each verifies) and their sizes, bytes read; `record' when the export just read reached a
%% verdict.
-type progress() :: #{
    checked := non_neg_integer(),
    checked_bytes := non_neg_integer(),
    remaining := non_neg_integer(),
    remaining_bytes := non_neg_integer(),
    bytes_read := non_neg_integer(),
    record => record()
}.
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

-export_type([error/0, unix_ms/0, backup/0, failed_backup/0, verified/0]).
-export_type([record/0, opts/0, job/0, prune_report/0, progress/0, listing/0]).
-export_type([offsite_config/0, remote_backup/0, offsite_uploaded/0, offsite_prune_report/0,
              offsite_fetched/0, offsite_check/0]).

%% Off-site configuration: atom keys, strings as binaries; a missing key or `undefined' takes the
%% default (see native/guard_nif/src/offsite.rs). The secret key never appears in any Detail.
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
    connect_timeout_ms => pos_integer(),
    timeout_ms => pos_integer(),
    max_retries => non_neg_integer()
}.
-type remote_backup() :: #{
    name := binary(),
    export_name := binary(),
    key := binary(),
    size := non_neg_integer(),
    mtime := unix_ms(),
    encrypted := boolean()
}.
%% `sha256'/`source_size': the export's; `stored_sha256'/`size': the object's bytes as stored
%% (the age ciphertext when encrypted); `reused': the object already held this export, nothing
%% was sent (`parts' 0).
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
-type offsite_prune_report() :: #{
    kept := [remote_backup()],
    deleted := [remote_backup()],
    failed := [#{error := binary(), _ => _}]
}.
%% A check of offsite_fetch_async/5, in the order they are made: the downloaded bytes against the
%% stored SHA-256 and size recorded at upload (before decrypting), age's authentication, the
%% export against its recorded SHA-256 and size, and verification. The first and third need
%% the object's metadata (an object uploaded by another tool has none).
-type offsite_check() :: stored_sha256 | age | export_sha256 | verify.
-type offsite_fetched() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    object_size := non_neg_integer(),
    encrypted := boolean(),
    verified := verified(),
    checked_by := [offsite_check()]
}.

%%--------------------------------------------------------------------------------------------
%% Loading
%%--------------------------------------------------------------------------------------------

%% @private Called by the loader (`-on_load'). Always returns ok so that the module loads even
%% without its library; the failure is remembered for the error every function then raises.
-spec init() -> ok.
init() ->
    Path = library_path(),
    case erlang:load_nif(filename:rootname(Path, ".so"), 0) of
        ok ->
            _ = persistent_term:erase(?LOAD_ERROR_KEY),
            ok;
        {error, Error} ->
            Reason = load_reason(Error),
            persistent_term:put(?LOAD_ERROR_KEY, {Path, Reason}),
            ?LOG_ERROR(#{
                msg => emqx_guard_nif_not_loaded, path => Path, architecture => architecture(), reason => Reason
            }),
            ok
    end.

%% @doc The file the library is loaded from: `<Arch>/emqx_guard_nif.so' (see `architecture/0') in
%% the first of `code:priv_dir(emqx_guard)' and `../priv' next to this module's beam that holds
%% it, else in the first of them that exists at all.
-spec library_path() -> file:filename().
library_path() ->
    Arch = architecture(),
    Candidates = [filename:join([Dir, Arch, ?LIB ++ ".so"]) || Dir <- priv_dirs()],
    case [P || P <- Candidates, filelib:is_regular(P)] of
        [Found | _] -> Found;
        [] when Candidates =/= [] -> hd(Candidates);
        [] -> filename:join(["priv", Arch, ?LIB ++ ".so"])
    end.

%% @doc The architecture the library is picked for: the part of
%% `erlang:system_info(system_architecture)' before the first `-', e.g. `"x86_64"' or `"aarch64"'.
-spec architecture() -> string().
architecture() ->
    hd(string:split(erlang:system_info(system_architecture), "-")).

priv_dirs() ->
    AppPriv =
        case code:priv_dir(emqx_guard) of
            Dir when is_list(Dir) -> [Dir];
            {error, _} -> []
        end,
    BeamPriv =
        case code:which(?MODULE) of
            Beam when is_list(Beam) ->
                [filename:join(filename:dirname(filename:dirname(Beam)), "priv")];
            _ ->
                []
        end,
    AppPriv ++ (BeamPriv -- AppPriv).

%% erlang:load_nif/2 reports {Atom, Charlist}; keep the atom, make the text a binary.
load_reason({Tag, Text}) when is_atom(Tag), is_list(Text) ->
    {Tag, unicode:characters_to_binary(Text)};
load_reason(Other) ->
    Other.

not_loaded() ->
    {Path, Reason} = persistent_term:get(?LOAD_ERROR_KEY, {library_path(), unknown}),
    {nif_not_loaded, Path, Reason}.

%%--------------------------------------------------------------------------------------------
%% Schedules (normal schedulers)
%%--------------------------------------------------------------------------------------------

%% @doc Check a crontab(5) expression. Returns it trimmed and single-spaced, or why it is not
%% accepted (e.g. `field_count', `out_of_range', `quartz_syntax', `never_fires').
-spec validate(Expr :: binary()) -> {ok, Normalized :: binary()} | error().
validate(_Expr) ->
    erlang:nif_error(not_loaded()).

%% @doc The next N (1 to 1000) fire instants of Expr in Zone (an IANA name or `<<"local">>'), in
%% UTC milliseconds, strictly increasing and all after AfterUnixMs. Bounded: a never-firing
%% expression is `never_fires', an unknown zone `bad_zone', any other N `bad_count'.
%% Up to 50 fire times are computed on a normal scheduler (well under a millisecond); more, which
%% can take a few milliseconds, on a dirty CPU scheduler.
-spec next_fires(Expr :: binary(), Zone :: binary(), AfterUnixMs :: unix_ms(), N :: integer()) ->
    {ok, [unix_ms()]} | error().
next_fires(Expr, Zone, AfterUnixMs, N) when is_integer(N), N > ?NORMAL_SCHEDULER_MAX_FIRES ->
    next_fires_dirty_nif(Expr, Zone, AfterUnixMs, N);
next_fires(Expr, Zone, AfterUnixMs, N) ->
    next_fires_nif(Expr, Zone, AfterUnixMs, N).

next_fires_nif(_Expr, _Zone, _AfterUnixMs, _N) ->
    erlang:nif_error(not_loaded()).

next_fires_dirty_nif(_Expr, _Zone, _AfterUnixMs, _N) ->
    erlang:nif_error(not_loaded()).

%% @doc Plain English for a valid expression, e.g. `<<"At 12:00, on Sunday">>'.
-spec describe(Expr :: binary()) -> {ok, English :: binary()} | error().
describe(_Expr) ->
    erlang:nif_error(not_loaded()).

%% @doc The IANA name of Zone; `<<"local">>' becomes the node's own IANA zone.
-spec resolve_zone(Zone :: binary()) -> {ok, IanaName :: binary()} | error().
resolve_zone(_Zone) ->
    erlang:nif_error(not_loaded()).

%% @doc The UTC offset in seconds in force in Zone at UnixMs.
-spec utc_offset(Zone :: binary(), UnixMs :: unix_ms()) -> {ok, OffsetSeconds :: integer()} | error().
utc_offset(_Zone, _UnixMs) ->
    erlang:nif_error(not_loaded()).

%%--------------------------------------------------------------------------------------------
%% Files (dirty IO schedulers)
%%--------------------------------------------------------------------------------------------

%% @doc The EMQX export files directly in Dir (regular files named
%% `emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz'), newest first. Anything else is invisible.
-spec list_backups(Dir :: binary()) -> {ok, [backup()]} | error().
list_backups(_Dir) ->
    erlang:nif_error(not_loaded()).

%%--------------------------------------------------------------------------------------------
%% Mail (dirty IO scheduler)
%%--------------------------------------------------------------------------------------------

%% @doc Send one plain-text UTF-8 message over SMTP (lettre, rustls) and return what the server
%% answered to it, e.g. `<<"250 2.0.0 Ok: queued as 4Xk2">>'. Config keys: `server', `port',
%% `tls' (`none' | `starttls' | `tls'), `from', `to' (a non-empty list) are required;
%% `tls_verify' (default true), `ca_file', `username' + `password', `timeout_ms' (default 30000,
%% bounds the connect and each read or write), `deadline_ms' (default 120000, bounds the whole
%% session: the call returns `{error, {timeout, _}}' by then however slowly the server answers)
%% are optional. A missing or malformed key is
%% `bad_config'; delivery errors are `connect', `timeout', `tls', `auth', `rejected' (5xx),
%% `transient' (4xx) or `smtp'. The password never appears in an error.
-spec send_mail(Config :: map(), Subject :: binary(), Body :: binary()) ->
    {ok, ServerAnswer :: binary()} | error().
send_mail(_Config, _Subject, _Body) ->
    erlang:nif_error(not_loaded()).

%% @doc Whether Name is exactly an EMQX export name (`emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz',
%% a real date): the one rule for which files retention, listing and copies may touch.
-spec is_export_name(Name :: binary()) -> boolean().
is_export_name(_Name) ->
    erlang:nif_error(not_loaded()).

%% @doc The space on the file system holding Path (a file or directory), in bytes: `available'
%% to a process without root's reserve (what EMQX can still write) and the `total' size, from
%% one `statvfs' call. `not_found' when Path does not exist, `io' otherwise. Dirty IO.
-spec disk_space(Path :: binary()) ->
    {ok, #{available := non_neg_integer(), total := non_neg_integer()}} | error().
disk_space(_Path) ->
    erlang:nif_error(not_loaded()).

%% @doc Always panics inside Rust; the call raises `error(nif_panicked)'. For tests.
-spec panic_probe() -> no_return().
panic_probe() ->
    erlang:nif_error(not_loaded()).

%%--------------------------------------------------------------------------------------------
%% Background jobs: one OS thread per job at SCHED_IDLE / nice 19, result by message
%%--------------------------------------------------------------------------------------------

%% @doc Verify Path on a background thread. Returns `{ok, Job}' at once; the caller then gets
%% `{emqx_guard_job, Job, {ok, record()}}' when the check reached a verdict (see the record's
%% `result'), or `{emqx_guard_job, Job, {error, {Reason, Detail}}}' when it did not: `not_found',
%% `io', `cancelled', `changed' (the file changed while read), `panicked'. The job is cancelled
%% when the calling process exits. At once: `{error, {bad_opts | busy | thread, Detail}}'.
-spec verify_async(Path :: binary(), Opts :: opts()) -> {ok, job()} | error().
verify_async(_Path, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc prune/5 on a background thread. First `{emqx_guard_job_progress, Job, progress()}' once
%% after listing (nothing checked yet) and once after each export read, with its record when the
%% check reached a verdict: every verdict as soon as it is known, so that a caller that keeps
%% them loses none if the job never ends. Last `{emqx_guard_job, Job, Result}' with Result as
%% prune/5 returns it (`cancelled': nothing was deleted; the verdicts reached were sent).
%% `bad_keep', `bad_record', `bad_opts' are returned at once.
-spec prune_async(Dir :: binary(), Keep :: integer(), Protect :: binary() | undefined,
                  DryRun :: boolean(), Records :: [record()], Opts :: opts()) ->
    {ok, job()} | error().
prune_async(_Dir, _Keep, _Protect, _DryRun, _Records, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc list_verified/2 on a background thread: later `{emqx_guard_job, Job, Result}'.
-spec list_verified_async(Dir :: binary(), Records :: [record()], Opts :: opts()) ->
    {ok, job()} | error().
list_verified_async(_Dir, _Records, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc Cancel a job: it stops at its next read and sends `{error, {cancelled, _}}'. A finished
%% job is left alone. Always `ok'.
-spec cancel(Job :: job()) -> ok.
cancel(_Job) ->
    erlang:nif_error(not_loaded()).

%% @doc Cancel every running job (the plugin stopping); returns how many there were.
-spec cancel_all() -> non_neg_integer().
cancel_all() ->
    erlang:nif_error(not_loaded()).

%%--------------------------------------------------------------------------------------------
%% Off-site copies (issue 12): background jobs, result by message
%%--------------------------------------------------------------------------------------------

%% @doc Upload the export at Path (its file name must be an export name) to the off-site
%% bucket, encrypted with age when Config has a `recipient' (object `<name>.age'), unless the
%% object is already there: a HEAD first, and an object whose metadata records this export (its
%% SHA-256 and size), its stored bytes and the same recipient is kept (`reused := true', nothing
%% sent). Otherwise the object records the export's SHA-256 and size and those of its stored bytes
%% (after a multipart upload by a server-side copy onto itself), and is checked (HEAD: size and
%% every metadata value read back). At once: `{ok, Job}' or
%% `{error, {bad_config | bad_name | bad_opts | busy | thread, Detail}}'. Later
%% `{emqx_guard_job, Job, {ok, offsite_uploaded()}}' or `{emqx_guard_job, Job, {error, {Reason,
%% Detail}}}' with Reason one of `auth', `not_found', `connect', `timeout', `tls', `remote',
%% `integrity', `io', `cancelled', `panicked'. A failed upload leaves no object of that name.
-spec offsite_upload_async(Config :: offsite_config(), Path :: binary(), Opts :: opts()) ->
    {ok, job()} | error().
offsite_upload_async(_Config, _Path, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc List the off-site backups directly under the prefix (only export names, with or without
%% `.age'), newest first: later `{emqx_guard_job, Job, {ok, [remote_backup()]} | error()}'.
-spec offsite_list_async(Config :: offsite_config(), Opts :: opts()) -> {ok, job()} | error().
offsite_list_async(_Config, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc Remote retention: keep the Keep newest exports (by the time in the name), delete older
%% backup objects (DryRun: only report them); nothing else in the bucket is touched. `bad_keep'
%% at once for Keep < 1; later `{emqx_guard_job, Job, {ok, offsite_prune_report()} | error()}'.
-spec offsite_prune_async(Config :: offsite_config(), Keep :: integer(), DryRun :: boolean(),
                          Opts :: opts()) ->
    {ok, job()} | error().
offsite_prune_async(_Config, _Keep, _DryRun, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc Download the off-site backup Name (an export name, with or without `.age'), check the
%% downloaded bytes against the stored SHA-256 and size recorded at upload BEFORE decrypting,
%% decrypt it with the age identity file IdentityPath when it is encrypted (age authenticates
%% it), compare the export with its recorded SHA-256 and size, verify it and put it into DestDir
%% under its export name (never over an existing file). Later `{emqx_guard_job, Job, {ok,
%% offsite_fetched()}}' (`checked_by' lists the checks made: an object without the metadata is
%% checked by `age' and `verify' only) or an error: `not_found', `decrypt' (wrong or missing
%% identity), `identity' (unusable identity file), `integrity' (altered object; the Detail
%% starts `integrity check failed (<check>)'), `verify' (not a usable export), `exists', `io',
%% `cancelled', and the network reasons of offsite_upload_async/3. On any error nothing is left
%% in DestDir.
-spec offsite_fetch_async(Config :: offsite_config(), Name :: binary(),
                          IdentityPath :: binary() | undefined, DestDir :: binary(),
                          Opts :: opts()) ->
    {ok, job()} | error().
offsite_fetch_async(_Config, _Name, _IdentityPath, _DestDir, _Opts) ->
    erlang:nif_error(not_loaded()).
