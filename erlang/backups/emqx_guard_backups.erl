%% @doc The backups on this node's disk (`<data_dir>/backup'): listing, making a new one
%% private, checking them, and retention. (An export being made, and what a failed one left, is
%% `emqx_guard_export_files'.)
%%
%% Reading a backup (verification, hashing) runs as a background job of the core: a thread at
%% the lowest OS priority, reading at most `backup_io_limit' bytes per second, that reports by
%% message to the process that started it (which waits, `emqx_guard_core:await/2'). Retention,
%% the listing and the plan trust the verification records (`emqx_guard_verifications') of files
%% that did not change, read the others, and hand the new records back; `verify_all/2' reads every
%% file regardless.
%%
%% Retention (`prune/3,5', `plan/2') records each verdict as soon as the job reports it, and has
%% a bound of its own: what reading the files it has to read takes at the limit (twice over, at
%% an assumed slow disk's rate when there is no limit), never more than an hour by default.
%% Retention that runs out of time deletes nothing, says how far it got
%% (`{retention_incomplete, Progress}'), and the next one starts where it stopped.
%%
%% Only files with EMQX export names (`emqx_guard_core:is_export_name/1', the rule kept in Rust)
%% are ever touched; files uploaded through EMQX's API under other names, symlinks and
%% subdirectories (EMQX 6.1+ keeps namespaced backups in `ns/') are left alone.
-module(emqx_guard_backups).

-include_lib("kernel/include/logger.hrl").

-export([names/0, list/1, make_private/1, prune/3, prune/4, prune/5, prune/6, plan/2]).
-export([check/1, check/3, check/4, verify_all/2, verify_all/3]).
-export([limit/0, job_opts/1]).

-export_type([listed/0, pruned/0, limit/0, progress/0, retention_error/0, list_error/0, keep/0]).

%% How long a job may take beyond reading at the limit (twice over): a bound, not an expectation.
-define(BASE_MS, 600000).
%% Retention: time to list, decide and delete, beyond reading.
-define(RETENTION_BASE_MS, 60000).
%% Retention: the most it takes in one go unless told otherwise; it goes on at the next run.
-define(RETENTION_MAX_MS, 3600000).
%% Retention without `backup_io_limit': the read rate assumed to size its bound (a slow disk).
-define(ASSUMED_RATE, 25000000).

-type listed() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    mtime := integer(),
    %% the verdict, or why no check reached one (the core's `{Reason, Detail}')
    verified := ok | {error, {atom(), binary()}},
    %% when the verdict was reached (Unix ms); absent when no check reached one
    checked_at => integer()
}.
%% Retention's rules, or a count N (`last=N' alone).
-type keep() :: emqx_guard_retention:rules() | pos_integer().
%% Bytes per second a job reads at most (`backup_io_limit').
-type limit() :: off | pos_integer().
-type pruned() :: #{
    pruned := [binary()],
    prune_failed := [{binary(), binary()}],
    prune_skipped := [{binary(), binary()}],
    %% bytes retention read (files it verified; trusted ones are not read)
    retention_read := non_neg_integer()
}.
%% How far retention got: files read and their sizes, files still to read at least and their
%% sizes, bytes read (`emqx_guard_nif:progress()' without its record).
-type progress() :: #{
    checked := non_neg_integer(),
    checked_bytes := non_neg_integer(),
    remaining := non_neg_integer(),
    remaining_bytes := non_neg_integer(),
    bytes_read := non_neg_integer()
}.
%% Why retention deleted nothing: out of time (the verdicts it reached are recorded), or failed.
-type retention_error() :: {retention_incomplete, progress()} | {retention_failed, {atom(), binary()}}.
%% Why the backups could not be listed: the directory (`names/0'), or the core's listing.
-type list_error() :: {list_failed, #{dir := binary(), posix := atom()} | {atom(), binary()}}.

%% @doc The names of the exports in this node's backup directory, newest first (no check of
%% their content): what `guard backup_status' shows per node and what the catch-up compares.
-spec names() -> [binary()] | {error, list_error()}.
names() ->
    Dir = emqx_guard_emqx:backup_dir(),
    case file:list_dir(Dir) of
        {ok, Names} -> lists:reverse(lists:sort([bin(N) || N <- Names, emqx_guard_core:is_export_name(N)]));
        {error, enoent} -> [];
        {error, Posix} -> {error, {list_failed, #{dir => bin(Dir), posix => Posix}}}
    end.

%% @doc The exports in Dir, newest first, each with its verdict: from its record when the file did
%% not change since, else verified now (and recorded). A directory that does not exist (no export
%% has run yet) has none.
-spec list(file:filename_all()) -> {ok, [listed()]} | {error, list_error()}.
list(Dir) ->
    Limit = limit(),
    Listing = unless_missing(
        Dir,
        fun() -> job(fun(Opts) -> emqx_guard_core:list_verified_async(Dir, records(), Opts) end, Limit, bound(Dir, Limit, ?BASE_MS)) end,
        #{backups => [], verified => []}
    ),
    case Listing of
        {ok, #{backups := Backups, verified := New}} ->
            ok = emqx_guard_verifications:add(New),
            {ok, [listed(B) || B <- Backups]};
        {error, Why} ->
            {error, {list_failed, Why}}
    end.

listed(B = #{verification := #{result := Result, verified_at := At}}) ->
    (maps:without([verification], B))#{verified => Result, checked_at => At};
listed(B = #{verification := {error, _} = NoVerdict}) ->
    (maps:without([verification], B))#{verified => NoVerdict}.

%% @doc `check/3' with the `backup_io_limit' setting.
-spec check(file:filename_all()) -> {ok, emqx_guard_nif:record()} | emqx_guard_core:error().
check(Path) ->
    check(Path, limit(), ?BASE_MS).

%% @doc Reads Path in full (a background job at Limit, waiting BaseMs plus twice the time the
%% limit needs): `{ok, Record}' with the verdict, good or bad (see its `result'), or
%% `{error, {Reason, Detail}}' when the check reached none (the file is gone, cannot be read,
%% changed while read, the core is not usable, no result in time). Records nothing.
-spec check(file:filename_all(), limit(), pos_integer()) -> {ok, emqx_guard_nif:record()} | emqx_guard_core:error().
check(Path, Limit, BaseMs) ->
    check(Path, Limit, BaseMs, fun(_) -> ok end).

%% @doc `check/3', calling OnTick(ElapsedMs) each second the read goes on (whoever waits is told
%% it still runs: `emqx_guard_core:await/3').
-spec check(file:filename_all(), limit(), pos_integer(), fun((non_neg_integer()) -> term())) ->
    {ok, emqx_guard_nif:record()} | emqx_guard_core:error().
check(Path, Limit, BaseMs, OnTick) ->
    Bytes = filelib:file_size(Path),
    case emqx_guard_core:verify_async(Path, job_opts(Limit)) of
        {ok, Job} -> emqx_guard_core:await(Job, BaseMs + read_ms(Bytes, Limit), OnTick);
        {error, _} = Error -> Error
    end.

%% @doc `guard backup_verify': reads every export in Dir (`all') or the one named, records
%% ignored, and records what it found. Returns each file's name and verdict (or why no check
%% reached one), newest first; `{error, {no_such_backup, _}}' for a name that is not an export
%% in Dir.
-spec verify_all(file:filename_all(), all | binary()) ->
    {ok, [{binary(), ok | {error, {atom(), binary()}}}]}
    | {error, list_error() | {no_such_backup, #{name := binary(), dir := binary()}}}.
verify_all(Dir, Which) ->
    verify_all(Dir, Which, fun emqx_guard_steps:noop/1).

%% @doc `verify_all/2', reporting each file's read as a step (`emqx_guard_steps'): `{started,
%% verify, #{file, size, index, count}}', a `progress' each second it goes on
%% (`#{file, elapsed_ms}'), then `{done, verify, #{file, size, duration_ms, result}}' (`result'
%% the verdict, or the error of a read that reached none).
-spec verify_all(file:filename_all(), all | binary(), emqx_guard_steps:report()) ->
    {ok, [{binary(), ok | {error, {atom(), binary()}}}]}
    | {error, list_error() | {no_such_backup, #{name := binary(), dir := binary()}}}.
verify_all(Dir, Which, Report) ->
    case unless_missing(Dir, fun() -> emqx_guard_core:list_backups(Dir) end, []) of
        {ok, Backups} ->
            case [B || B = #{name := N} <- Backups, Which =:= all orelse N =:= Which] of
                [] when Which =/= all -> {error, {no_such_backup, #{name => Which, dir => bin(Dir)}}};
                Chosen -> {ok, [verify_one(B, I, length(Chosen), Report) || {I, B} <- lists:enumerate(Chosen)]}
            end;
        {error, Why} ->
            {error, {list_failed, Why}}
    end.

verify_one(#{name := Name, path := Path, size := Size}, Index, Count, Report) ->
    Report({started, verify, #{file => Name, size => Size, index => Index, count => Count}}),
    T0 = erlang:monotonic_time(millisecond),
    Tick = fun(Ms) -> Report({progress, verify, #{file => Name, elapsed_ms => Ms}}) end,
    Result =
        case check(Path, limit(), ?BASE_MS, Tick) of
            {ok, Record = #{result := Verdict}} ->
                ok = emqx_guard_verifications:add([Record]),
                Verdict;
            {error, _} = NoVerdict ->
                NoVerdict
        end,
    Report({done, verify, #{file => Name, size => Size, duration_ms => emqx_guard_steps:since(T0), result => Result}}),
    {Name, Result}.

%% @doc Makes a new backup readable by EMQX's user only (mode 0600): backups hold password hashes
%% and API keys. `{error, {mode_not_set, _}}' when the mode could not be set.
-spec make_private(binary()) -> ok | {error, {mode_not_set, #{file := binary(), posix := atom()}}}.
make_private(Path) ->
    case file:change_mode(Path, 8#600) of
        ok ->
            ok;
        {error, Posix} ->
            Name = bin(filename:basename(Path)),
            ?LOG_WARNING(#{msg => emqx_guard_backup_mode_not_set, file => Name, reason => Posix}),
            {error, {mode_not_set, #{file => Name, posix => Posix}}}
    end.

%% @doc Retention with the `backup_io_limit' setting and its usual bound: `prune/5'.
-spec prune(file:filename_all(), keep(), binary() | undefined) -> {ok, pruned()} | {error, retention_error()}.
prune(Dir, Keep, Protect) ->
    prune(Dir, Keep, Protect, default).

%% @doc Retention with the `backup_io_limit' setting, taking at most MaxMs: `prune/5'.
-spec prune(file:filename_all(), keep(), binary() | undefined, pos_integer() | default) ->
    {ok, pruned()} | {error, retention_error()}.
prune(Dir, Keep, Protect, MaxMs) ->
    prune(Dir, Keep, Protect, limit(), MaxMs).

%% @doc Retention: applies Keep's rules (`emqx_guard_retention:rules()': the policy, pins and
%% zone; a count N is `last=N') to the exports in Dir, counting only those that verify, and
%% deletes what no rule keeps, never a pinned one nor Protect (the new backup or the copy just
%% received; it counts only as what it is, so it never takes another's place). Exports that do
%% not verify within the rules' reach are neither counted nor deleted (`prune_skipped'). A file
%% with a record that still matches it is not read; the others are verified (a background job
%% at Limit) and each verdict recorded as soon as it is reached. It may take what reading those
%% files needs (see the module doc), at most MaxMs (`default': an hour); out of time it deletes
%% nothing and returns `{error, {retention_incomplete, Progress}}', and the next call reads only
%% what is still unknown. Failed deletes and skipped files are logged. `{error, {retention_failed,
%% {Reason, Detail}}}' when the directory cannot be pruned (then nothing was deleted).
-spec prune(file:filename_all(), keep(), binary() | undefined, limit(), pos_integer() | default) ->
    {ok, pruned()} | {error, retention_error()}.
prune(Dir, Keep, Protect, Limit, MaxMs) ->
    prune(Dir, Keep, Protect, Limit, MaxMs, fun(_) -> ok end).

%% @doc `prune/5', calling OnProgress with how far retention got (`progress()') each time its job
%% has read a file: for whoever waits to see it go on.
-spec prune(file:filename_all(), keep(), binary() | undefined, limit(), pos_integer() | default,
            fun((progress()) -> term())) ->
    {ok, pruned()} | {error, retention_error()}.
prune(Dir, Keep, Protect, Limit, MaxMs, OnProgress) ->
    Start = fun(Opts) -> emqx_guard_core:prune_async(Dir, Keep, Protect, false, records(), Opts) end,
    case retention_job(Start, Limit, MaxMs, OnProgress) of
        {ok, #{deleted := Deleted, failed := Failed, skipped_unverified := Skipped, bytes_read := Read}} ->
            FailedPairs = [{N, E} || #{name := N, error := E} <- Failed],
            SkippedPairs = [{N, E} || #{name := N, error := E} <- Skipped],
            %% each with its plugins companion (`emqx_guard_companion')
            lists:foreach(fun(#{name := N}) ->
                ?LOG_INFO(#{msg => emqx_guard_backup_pruned, file => N}),
                emqx_guard_companion:drop(Dir, N)
            end, Deleted),
            lists:foreach(
                fun({N, E}) -> ?LOG_WARNING(#{msg => emqx_guard_backup_prune_failed, file => N, error => E}) end,
                FailedPairs
            ),
            lists:foreach(
                fun({N, E}) -> ?LOG_WARNING(#{msg => emqx_guard_backup_unverified_kept, file => N, error => E}) end,
                SkippedPairs
            ),
            {ok, #{
                pruned => [N || #{name := N} <- Deleted],
                prune_failed => FailedPairs,
                prune_skipped => SkippedPairs,
                retention_read => Read
            }};
        {error, {retention_incomplete, Progress}} = Error ->
            ?LOG_WARNING((maps:without([bytes_read], Progress))#{msg => emqx_guard_retention_incomplete, dir => bin(Dir)}),
            Error;
        {error, {retention_failed, {_Reason, Detail}}} = Error ->
            ?LOG_WARNING(#{msg => emqx_guard_backup_prune_failed, dir => bin(Dir), error => Detail}),
            Error
    end.

%% @doc Retention's plan for Dir now under Keep (nothing is deleted), made by the very decision
%% `prune/5' makes: `plan', every export newest first with what becomes of it (`keep' and the
%% rule(s) that keep it, or why it goes, in `why'); `delete', the exports it would delete, and
%% `skipped_unverified', those that do not verify and are left in place, each with the
%% verifier's `error' line, both oldest first. The verdicts it reaches are recorded as
%% retention's are; `{error, retention_error()}' when it cannot say (out of time: how far it got).
-spec plan(file:filename_all(), keep()) ->
    {ok, #{
        plan := [emqx_guard_nif:fate()],
        delete := [emqx_guard_nif:backup()],
        skipped_unverified := [emqx_guard_nif:failed_backup()]
    }}
    | {error, retention_error()}.
plan(Dir, Keep) ->
    Nothing = #{deleted => [], skipped_unverified => [], plan => []},
    Start = fun(Opts) -> emqx_guard_core:prune_async(Dir, Keep, undefined, true, records(), Opts) end,
    case unless_missing(Dir, fun() -> retention_job(Start, limit(), default, fun(_) -> ok end) end, Nothing) of
        {ok, #{deleted := Would, skipped_unverified := Skipped, plan := Plan}} ->
            {ok, #{plan => Plan, delete => Would, skipped_unverified => Skipped}};
        {error, _} = Error ->
            Error
    end.

%% A retention job (`prune_async/6'), waited for within its bound (`retention_bound/3', asked
%% again as the job says how much it has to read), each verdict it reports recorded at once.
retention_job(Start, Limit, MaxMs0, OnProgress) ->
    MaxMs =
        case MaxMs0 of
            default -> ?RETENTION_MAX_MS;
            Ms -> Ms
        end,
    case Start(job_opts(Limit)) of
        {ok, Job} ->
            T0 = erlang:monotonic_time(millisecond),
            Deadline = fun(Seen) -> T0 + retention_bound(Seen, Limit, MaxMs) end,
            %% each new report is also told to whoever waits
            OnSeen = fun(Progress, Acc) ->
                case seen(Progress, Acc) of
                    Acc ->
                        Acc;
                    New ->
                        tell(OnProgress, New),
                        New
                end
            end,
            case emqx_guard_core:await_progress(Job, Deadline, OnSeen, undefined) of
                {{ok, Report = #{verified := New}}, _} ->
                    %% recorded as they came; again in case a report could not be read
                    ok = emqx_guard_verifications:add(New),
                    {ok, Report};
                {{error, {timeout, _}}, Seen} when is_map(Seen) ->
                    {error, {retention_incomplete, Seen}};
                {{error, Why}, _} ->
                    {error, {retention_failed, Why}}
            end;
        {error, Why} ->
            {error, {retention_failed, Why}}
    end.

tell(OnProgress, Progress) ->
    try OnProgress(Progress) of
        _ -> ok
    catch
        _:_ -> ok
    end.

%% A progress report of the job: its record (a verdict just reached) is kept at once.
seen(Progress = #{checked := _, record := Record}, _Seen) ->
    ok = emqx_guard_verifications:add([Record]),
    maps:remove(record, Progress);
seen(Progress = #{checked := _}, _Seen) ->
    Progress;
seen(_Unreadable, Seen) ->
    Seen.

%% How long retention may take: listing, deciding and deleting, plus twice the time reading what
%% it has read and still has to read takes at Limit (at an assumed slow disk's rate without
%% one), never more than MaxMs. Before the job says what it has to read, only the first part.
retention_bound(undefined, _Limit, MaxMs) ->
    min(MaxMs, ?RETENTION_BASE_MS);
retention_bound(#{checked_bytes := Done, remaining_bytes := Left}, Limit, MaxMs) ->
    Rate =
        case Limit of
            off -> ?ASSUMED_RATE;
            Bps -> Bps
        end,
    min(MaxMs, ?RETENTION_BASE_MS + read_ms(Done + Left, Rate)).

%%--------------------------------------------------------------------------------------------
%% Background jobs
%%--------------------------------------------------------------------------------------------

%% Starts a job with the limit and waits for its result at most TimeoutMs.
job(Start, Limit, TimeoutMs) ->
    case Start(job_opts(Limit)) of
        {ok, Job} -> emqx_guard_core:await(Job, TimeoutMs);
        {error, _} = Error -> Error
    end.

%% BaseMs plus twice the time reading every export in Dir takes at Limit.
bound(_Dir, off, BaseMs) ->
    BaseMs;
bound(Dir, Limit, BaseMs) ->
    Bytes =
        case emqx_guard_core:list_backups(Dir) of
            {ok, Backups} -> lists:sum([S || #{size := S} <- Backups]);
            {error, _} -> 0
        end,
    BaseMs + read_ms(Bytes, Limit).

read_ms(_Bytes, off) -> 0;
read_ms(Bytes, Limit) -> 2 * Bytes * 1000 div Limit.

%% @doc The options of a background job reading at most Limit (`emqx_guard_nif:opts()').
-spec job_opts(limit()) -> emqx_guard_nif:opts().
job_opts(off) -> #{};
job_opts(Bps) -> #{io_limit => Bps}.

%% @doc The read limit in use: the `backup_io_limit' setting.
-spec limit() -> limit().
limit() ->
    maps:get(backup_io_limit, emqx_guard_settings:get()).

records() ->
    emqx_guard_verifications:records().

%% A backup directory that does not exist yet (no export ran) holds nothing.
unless_missing(Dir, Call, Empty) ->
    case file:read_file_info(Dir) of
        {error, enoent} -> {ok, Empty};
        _ -> Call()
    end.

bin(B) when is_binary(B) -> B;
bin(L) -> unicode:characters_to_binary(L).
