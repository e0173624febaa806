%% @doc The Rust core's Erlang face, and its contract: the one place it is stated. Each function's
%% `-spec' and `@doc' say what it takes and answers, its errors and where it runs; the terms are
%% named in `emqx_guard_nif_types'. The rest of the plugin calls it through `emqx_guard_core'.
%%
%% For every function:
%% <ul>
%% <li>strings are UTF-8 binaries; paths are binaries taken byte for byte;</li>
%% <li>the answer is `{ok, Value}' or `{error, {Reason, Detail}}': Reason a stable atom (listed
%%     in each function's doc; callers may match on it), Detail one line a person understands
%%     that never holds a secret;</li>
%% <li>an argument of the wrong Erlang type raises `badarg';</li>
%% <li>a Rust panic raises the error `nif_panicked' and the node carries on;</li>
%% <li>where it runs is in its doc: a normal scheduler for what returns within microseconds,
%%     a dirty IO one for a file system call, a job thread for reading backups or the network.</li>
%% </ul>
%%
%% Jobs (the `_async' functions): the call checks its arguments and answers `{ok, Job}' at once,
%% or `{error, {Reason, Detail}}' (`bad_opts', `busy' with 16 jobs running, `thread' when the OS
%% refuses one, the function's own argument errors). The job runs on a thread of its own, named
%% `emqx_guard_job', at `SCHED_IDLE' and nice 19, so EMQX's schedulers always win the CPU, and
%% ends with `{emqx_guard_job, Job, Result}' to the calling process (a panic as
%% `{error, {panicked, Detail}}'). It reads through a cancel flag checked before every 128 KiB
%% read and every 20 ms of throttling, at most `io_limit' bytes per second (`opts()'). It is
%% cancelled (`{error, {cancelled, Detail}}', nothing that counts left behind) by `cancel/1',
%% `cancel_all/0', or the exit of the process that started it, which the job monitors.
%%
%% Loading: the package ships one library per architecture, `priv/<Arch>/emqx_guard_nif.so'
%% (`architecture/0', `library_path/0'). If it cannot be loaded the module still loads, and every
%% function raises `error({nif_not_loaded, Path, Reason})'. The library has an `upgrade' callback
%% that takes over the job resource type, so the module can be purged and reloaded in a running
%% node (EMQX up to 5.8 reloads every beam of a plugin on restart) and jobs keep running.
-module(emqx_guard_nif).

-include_lib("kernel/include/logger.hrl").

%% Schedules, files, mail, names: normal or dirty schedulers.
-export([validate/1, next_fires/4, describe/1, resolve_zone/1, utc_offset/2]).
-export([list_backups/1, disk_space/1, is_export_name/1, retention_policy/1, send_mail/3]).

%% Jobs: verification, retention, the listing with verdicts; cancelling them.
-export([verify_async/2, prune_async/6, list_verified_async/3, cancel/1, cancel_all/0]).

%% Jobs: off-site copies on S3-compatible object storage.
-export([offsite_upload_async/3, offsite_list_async/2, offsite_prune_async/4, offsite_fetch_async/5]).

%% Loading: where the library is looked for (init/0 uses them; exported for diagnostics).
-export([library_path/0, architecture/0]).

%% The probe of the panic contract: only a deliberate Rust panic can show that a panic becomes the
%% error `nif_panicked' and the node carries on, so its callers are the tests that show it. (The
%% library implements it: the function must exist in every build, and the compiler keeps only
%% what is exported or called.)
-export([panic_probe/0]).

-on_load(init/0).

%% The terms, as `emqx_guard_nif_types' documents them, under the names the plugin uses.
-type error() :: emqx_guard_nif_types:error().
-type unix_ms() :: emqx_guard_nif_types:unix_ms().
-type backup() :: emqx_guard_nif_types:backup().
-type failed_backup() :: emqx_guard_nif_types:failed_backup().
-type verified() :: emqx_guard_nif_types:verified().
-type record() :: emqx_guard_nif_types:record().
-type opts() :: emqx_guard_nif_types:opts().
-type job() :: emqx_guard_nif_types:job().
-type prune_report() :: emqx_guard_nif_types:prune_report().
-type progress() :: emqx_guard_nif_types:progress().
-type listing() :: emqx_guard_nif_types:listing().
-type mail_config() :: emqx_guard_nif_types:mail_config().
-type offsite_config() :: emqx_guard_nif_types:offsite_config().
-type remote_backup() :: emqx_guard_nif_types:remote_backup().
-type offsite_uploaded() :: emqx_guard_nif_types:offsite_uploaded().
-type offsite_prune_report() :: emqx_guard_nif_types:offsite_prune_report().
-type offsite_check() :: emqx_guard_nif_types:offsite_check().
-type offsite_fetched() :: emqx_guard_nif_types:offsite_fetched().
-type policy() :: emqx_guard_nif_types:policy().
-type rules() :: emqx_guard_nif_types:rules().
-type fate() :: emqx_guard_nif_types:fate().

-export_type([error/0, unix_ms/0, backup/0, failed_backup/0, verified/0, record/0, opts/0, job/0]).
-export_type([prune_report/0, progress/0, listing/0, mail_config/0]).
-export_type([offsite_config/0, remote_backup/0, offsite_uploaded/0, offsite_prune_report/0]).
-export_type([offsite_check/0, offsite_fetched/0, policy/0, rules/0, fate/0]).

-define(LIB, "emqx_guard_nif").
-define(LOAD_ERROR_KEY, {?MODULE, load_error}).
%% next_fires/4 asks a dirty CPU scheduler for more fire times than this.
-define(NORMAL_SCHEDULER_MAX_FIRES, 50).

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
%% it (EMQX loads a plugin by adding its ebin to the code path), else in the first of them that
%% exists at all. A library for another architecture is never picked.
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

%% The error every function raises when the library is not loaded: the file and the reason.
not_loaded() ->
    {Path, Reason} = persistent_term:get(?LOAD_ERROR_KEY, {library_path(), unknown}),
    {nif_not_loaded, Path, Reason}.

%%--------------------------------------------------------------------------------------------
%% Schedules: normal scheduler (bounded work, microseconds)
%%--------------------------------------------------------------------------------------------

%% @doc Checks a crontab(5) expression; answers it trimmed and single-spaced (a macro in lower
%% case). Errors: `empty', `field_count', `seconds_field', `unsupported_macro', `out_of_range',
%% `reversed_range', `zero_step', `bad_char' (also for a binary that is not UTF-8),
%% `quartz_syntax', `never_fires'.
-spec validate(Expr :: binary()) -> {ok, Normalized :: binary()} | error().
validate(_Expr) ->
    erlang:nif_error(not_loaded()).

%% @doc The next N (1 to 1000) fire instants of Expr in Zone (an IANA name or `<<"local">>'), in
%% UTC milliseconds, strictly increasing, all after AfterUnixMs. Errors: those of `validate/1',
%% `bad_zone', `bad_count' (any other N, a bignum too), `out_of_range' (an instant outside the
%% years 1 to 9999); a count that is not an integer raises `badarg'. Up to 50 fire times run on a
%% normal scheduler (well under a millisecond), more on a dirty CPU one (a few milliseconds).
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

%% @doc Plain English for a valid expression, e.g. `<<"At 12:00, on Sunday">>' for
%% `<<"0 12 * * 0">>'. Errors: those of `validate/1'.
-spec describe(Expr :: binary()) -> {ok, English :: binary()} | error().
describe(_Expr) ->
    erlang:nif_error(not_loaded()).

%% @doc The IANA name of Zone (checked, case-sensitive); `<<"local">>' becomes the node's own
%% zone, read once when the library loads (a changed system zone needs a node restart). Error:
%% `bad_zone'.
-spec resolve_zone(Zone :: binary()) -> {ok, IanaName :: binary()} | error().
resolve_zone(_Zone) ->
    erlang:nif_error(not_loaded()).

%% @doc The UTC offset in seconds in force in Zone at UnixMs. Errors: `bad_zone',
%% `out_of_range'.
-spec utc_offset(Zone :: binary(), UnixMs :: unix_ms()) -> {ok, OffsetSeconds :: integer()} | error().
utc_offset(_Zone, _UnixMs) ->
    erlang:nif_error(not_loaded()).

%%--------------------------------------------------------------------------------------------
%% Files, names, mail
%%--------------------------------------------------------------------------------------------

%% @doc The export files directly in Dir, newest first (by the time in their names): regular
%% files named as `is_export_name/1' says; anything else (other names, directories, symlinks) is
%% invisible. Errors: `not_a_directory', `io'. Dirty IO.
-spec list_backups(Dir :: binary()) -> {ok, [backup()]} | error().
list_backups(_Dir) ->
    erlang:nif_error(not_loaded()).

%% @doc The space on the file system holding Path (a file or directory), in bytes, from one
%% `statvfs': `available' to a process without root's reserve (`f_bavail * f_frsize': what EMQX
%% can still write) and the `total' size. Errors: `not_found', `io'. Dirty IO (a hung network
%% file system blocks it). A NIF because OTP has no free-space call without `os_mon', whose
%% `disksup' EMQX turns off.
-spec disk_space(Path :: binary()) ->
    {ok, #{available := non_neg_integer(), total := non_neg_integer()}} | error().
disk_space(_Path) ->
    erlang:nif_error(not_loaded()).

%% @doc Whether Name is exactly an EMQX export name, `emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz'
%% with a real date: the one rule for which files are backups, which retention, listing and
%% copies may touch. Not UTF-8 is `false'. Normal scheduler.
-spec is_export_name(Name :: binary()) -> boolean().
is_export_name(_Name) ->
    erlang:nif_error(not_loaded()).

%% @doc Parses a retention policy, restic's `forget' rules as one line: `last=N', `hourly=N',
%% `daily=N', `weekly=N', `monthly=N', `yearly=N' (0 to 100000) and `within=<duration>' (years,
%% months, days and hours: `2d', `36h', `1y6m'), separated by spaces or commas, each at most
%% once; a bare number N alone is `last=N'; at least one rule above zero. `{ok, policy()}' (its
%% canonical text parses back to it), or one line saying what to write instead: `empty',
%% `not_a_rule', `unknown_rule', `bad_count', `bad_within', `repeated_rule', `keeps_nothing'.
%% Normal scheduler.
-spec retention_policy(Text :: binary()) -> {ok, policy()} | error().
retention_policy(_Text) ->
    erlang:nif_error(not_loaded()).

%% @doc Sends one plain-text UTF-8 message over SMTP (rustls; `mail_config()') and answers what
%% the server said to it, e.g. `<<"250 2.0.0 Ok: queued as 4Xk2">>'. Within `deadline_ms' however
%% slowly the server answers (then `timeout'; the message may still be delivered later). Errors:
%% `bad_config', `bad_address', `ca_file', `bad_message' (nothing sent); `connect', `timeout',
%% `tls', `auth', `rejected' (5xx), `transient' (4xx), `smtp'. Dirty IO.
-spec send_mail(Config :: mail_config(), Subject :: binary(), Body :: binary()) ->
    {ok, ServerAnswer :: binary()} | error().
send_mail(_Config, _Subject, _Body) ->
    erlang:nif_error(not_loaded()).

%% @doc Always panics inside Rust: the call raises `error(nif_panicked)'. For the tests of the
%% panic contract only.
-spec panic_probe() -> no_return().
panic_probe() ->
    erlang:nif_error(not_loaded()).

%%--------------------------------------------------------------------------------------------
%% Jobs: verification and retention (see the module doc for what every job shares)
%%--------------------------------------------------------------------------------------------

%% @doc Verifies Path: a complete gzip stream, a well-formed tar, one top directory named as the
%% file, META.hocon and cluster.hocon in it, no unsafe paths. Result `{ok, record()}' when the
%% check reached a verdict, good or bad (its `result': `empty_file', `not_gzip', `truncated',
%% `corrupt', `bad_tar', `wrong_top_dir', `missing_meta', `missing_cluster_conf',
%% `unsafe_path'), else `{error, {Reason, Detail}}': `not_found', `io', `changed' (the file
%% changed while it was read), `cancelled', `panicked'.
-spec verify_async(Path :: binary(), Opts :: opts()) -> {ok, job()} | error().
verify_async(_Path, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc Retention in Dir under Keep (`rules()'; a count N is `last=N'): the policy applied to
%% the exports that verify, in the zone's calendar (restic's `forget' rules; a backup kept by any
%% rule stays), every export no rule keeps deleted (DryRun: only said), trusting Records: an
%% export whose identity matches a record is not read (it counts when its `result' is `ok'); the
%% others are read newest first, each at most once, only while their verdict can change the
%% decision. Exports that do not verify within the rules' reach are neither counted nor deleted;
%% when the rules find fewer verified backups than they ask for, no export that does not verify
%% is deleted. Pinned exports and Protect (a path, or `undefined': the backup just made or copied
%% in) are never deleted, and that is all: each counts only if it verifies, in its place by time,
%% so it never displaces a newer backup. A failed delete is reported and the rest go ahead;
%% nothing outside Dir and no symlink is touched. At once: `bad_keep' (a count below 1), a
%% policy's errors (as `retention_policy/1'), `bad_zone', `bad_record', `bad_opts'; a Keep of
%% another shape raises `badarg'. Before the result `{emqx_guard_job_progress, Job, progress()}'
%% comes once after listing and once after each export read, with its record: every verdict as
%% soon as it is known, so a job cut short loses none. Result `{ok, prune_report()}' (its `plan':
%% every export, newest first, with the rule(s) that keep it or why it goes: the same decision
%% for a dry run and the real prune) or an error: `not_a_directory', `io', `cancelled' (nothing
%% deleted), `panicked'.
-spec prune_async(Dir :: binary(), Keep :: rules() | integer(), Protect :: binary() | undefined,
                  DryRun :: boolean(), Records :: [record()], Opts :: opts()) ->
    {ok, job()} | error().
prune_async(_Dir, _Keep, _Protect, _DryRun, _Records, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc The exports of Dir (as `list_backups/1'), each with its verification, trusting Records
%% (see `listing()'). At once: `bad_record', `bad_opts'. Result `{ok, listing()}' or an error:
%% `not_a_directory', `io', `cancelled', `panicked'.
-spec list_verified_async(Dir :: binary(), Records :: [record()], Opts :: opts()) ->
    {ok, job()} | error().
list_verified_async(_Dir, _Records, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc Cancels Job: it stops at its next read and answers `{error, {cancelled, Detail}}'; a
%% finished job is left alone. Always `ok'; not a job raises `badarg'. Normal scheduler.
-spec cancel(Job :: job()) -> ok.
cancel(_Job) ->
    erlang:nif_error(not_loaded()).

%% @doc Cancels every running job (the plugin stopping); answers how many there were. Normal
%% scheduler.
-spec cancel_all() -> non_neg_integer().
cancel_all() ->
    erlang:nif_error(not_loaded()).

%%--------------------------------------------------------------------------------------------
%% Jobs: off-site copies (network errors: `auth', `not_found', `connect', `timeout', `tls',
%% `remote'; a job makes no S3 request on any scheduler)
%%--------------------------------------------------------------------------------------------

%% @doc Uploads the export at Path (its file name must be an export name, or the plugins
%% companion name beside one, `emqx-export-….plugins.tgz', else `bad_name' at once) as
%% `<prefix>/<name>', encrypted with age as `<name>.age' when Config has a `recipient',
%% unless a HEAD finds the object holding it already (this export's SHA-256 and size, a stored
%% SHA-256 and size, the same recipient: `reused', nothing sent). The file is read once (hashed
%% and encrypted on the way) while `concurrency' parts go out at once. The object records the
%% export's and its stored bytes' SHA-256 and size as metadata (a multipart upload by a copy onto
%% itself at the end), each request carries its checksum, and a HEAD checks size and metadata
%% after. At once: `bad_config', `bad_name', `bad_opts'. Result
%% `{ok, offsite_uploaded()}' or an error: the network ones, `integrity' (the file changed while
%% uploaded; the server kept other bytes or metadata: the object is deleted; replaced by another
%% upload meanwhile), `io', `cancelled', `panicked'. A failure leaves no object of that name.
-spec offsite_upload_async(Config :: offsite_config(), Path :: binary(), Opts :: opts()) ->
    {ok, job()} | error().
offsite_upload_async(_Config, _Path, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc The off-site backups directly under the prefix (only export names, with or without
%% `.age'; never a plugins companion), newest first. At once: `bad_config', `bad_opts'. Result `{ok, [remote_backup()]}' or
%% an error: the network ones, `cancelled', `panicked'.
-spec offsite_list_async(Config :: offsite_config(), Opts :: opts()) -> {ok, job()} | error().
offsite_list_async(_Config, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc Remote retention: Keep (`rules()'; a count N is `last=N') applied to the exports under
%% the prefix as `prune_async/6' applies it, every export counting as verified (plain and `.age'
%% of one export count once and share its fate); the objects of exports no rule keeps are
%% deleted (DryRun: only reported) with their plugins companions, pinned ones never; other keys
%% are never touched. At once:
%% `bad_keep', a policy's errors, `bad_zone', `bad_config', `bad_opts'. Result
%% `{ok, offsite_prune_report()}' (its `plan': every object with its export's fate, newest first)
%% or an error: the network ones, `cancelled', `panicked'.
-spec offsite_prune_async(Config :: offsite_config(), Keep :: rules() | integer(), DryRun :: boolean(),
                          Opts :: opts()) ->
    {ok, job()} | error().
offsite_prune_async(_Config, _Keep, _DryRun, _Opts) ->
    erlang:nif_error(not_loaded()).

%% @doc Downloads the off-site backup Name (an export name, or a backup's plugins companion name,
%% `emqx-export-….plugins.tgz': fetched the same way without the verification, its
%% `verified' holding only its `sha256'; without `.age' the plain object is taken when it exists,
%% else the encrypted one) and puts it into DestDir under its own name,
%% mode 0600, never over an existing file. The checks, in the order they count (`offsite_check()'):
%% the downloaded bytes against the stored SHA-256 and size (decryption runs alongside the
%% download; nothing it produced counts before the stored SHA-256 matched), decryption with the
%% age identity file IdentityPath (age authenticates every chunk), the export against its
%% recorded SHA-256 and size, verification; `checked_by' lists those made (an object without the
%% metadata gets the last two). The download goes in `part_size' ranges, `concurrency' at once,
%% pinned to the object's ETag, or as one stream where the server answers with the whole object,
%% within one overall deadline (see `offsite_config()'). At once: `bad_config', `bad_name', `bad_opts'. Result
%% `{ok, offsite_fetched()}' or an error: `not_found', `decrypt' (no identity given or none
%% matches), `identity' (an unusable identity file; its content never quoted), `integrity' (the
%% Detail starts `integrity check failed (<check>)'), `verify', `exists', `io', the network
%% ones, `cancelled', `panicked'. Any error leaves nothing in DestDir.
-spec offsite_fetch_async(Config :: offsite_config(), Name :: binary(),
                          IdentityPath :: binary() | undefined, DestDir :: binary(), Opts :: opts()) ->
    {ok, job()} | error().
offsite_fetch_async(_Config, _Name, _IdentityPath, _DestDir, _Opts) ->
    erlang:nif_error(not_loaded()).
