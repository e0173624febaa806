%% @doc One backup run, and the read-only views of the backup directory.
%%
%% A run (`run/1'), in this order:
%% <ol>
%% <li>EMQX's export, through `emqx_guard_emqx:export/1' (error tuple, exception and a hang past
%%     the timeout are all failures);</li>
%% <li>the new file's mode becomes 0600 at once (backups hold password hashes and API keys);</li>
%% <li>`emqx_guard_nif:verify/1' of the new file;</li>
%% <li>only if it verified: prune to the newest `keep' exports that verify, never the new file
%%     (an unverified export newer than the oldest kept one is neither counted nor deleted, and is
%%     reported in `prune_skipped').</li>
%% </ol>
%% The new file is made private (mode 0600) as soon as the export returns, before it is verified.
%% A failed run deletes only what it made itself: the unverified file the export returned, or,
%% when the export failed without naming a file, the export-named files and staging directories
%% that appeared in the backup directory during this run and are named from the run's start
%% (node local time, less a second) on (names present before, and an export someone else started
%% earlier, are never touched). Every earlier backup is kept. If the verifier itself cannot run, the new file is
%% kept (unverified) and the run fails. Raising and clearing the EMQX alarm is the caller's job
%% (the scheduler); the run only logs.
%%
%% Only one run may go at a time (EMQX's export has no lock): the caller makes sure of that.
-module(emqx_guard_backup).

-include_lib("kernel/include/file.hrl").
-include_lib("kernel/include/logger.hrl").

-export([run/1, list/1, prune_preview/2, prune_plan/2, format_error/1]).

-type backup() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    mtime := integer()
}.
-type listed_backup() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    mtime := integer(),
    verified := ok | {error, binary()}
}.
-type report() :: #{
    started_at := integer(),
    duration_ms := non_neg_integer(),
    file => binary(),
    path => binary(),
    size => non_neg_integer(),
    sha256 => binary(),
    version => binary(),
    pruned => [binary()],
    prune_failed => [{binary(), binary()}],
    prune_skipped => [{binary(), binary()}],
    prune_error => binary(),
    mode_error => binary(),
    removed => [binary()],
    reason => term(),
    error => binary()
}.
-type run_opts() :: #{keep := pos_integer(), export_timeout := timeout()}.

-export_type([backup/0, listed_backup/0, report/0, run_opts/0]).

%% EMQX export names (`emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz') and the staging directory
%% EMQX fills while exporting (the same name without `.tar.gz').
-define(EXPORT_RE, "^emqx-export-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}\\.[0-9]{3}(\\.tar\\.gz)?$").

%%--------------------------------------------------------------------
%% A run
%%--------------------------------------------------------------------

%% @doc Runs one backup. Never raises: anything unexpected is a failure report.
%% Success: `{ok, #{started_at, duration_ms, file, path, size, sha256, version, pruned,
%% prune_failed}}' (plus `prune_error' / `mode_error' when those steps failed: the backup itself
%% is good). Failure: `{error, #{started_at, duration_ms, reason, error}}', with `file' when the
%% export named one and `removed' listing what this run deleted. `error' is one line for people.
-spec run(run_opts()) -> {ok, report()} | {error, report()}.
run(#{keep := Keep, export_timeout := Timeout}) when is_integer(Keep), Keep >= 1 ->
    StartedAt = erlang:system_time(millisecond),
    T0 = erlang:monotonic_time(millisecond),
    Outcome =
        try
            do_run(Keep, Timeout, StartedAt)
        catch
            Class:Reason:Stack ->
                ?LOG_ERROR(#{
                    msg => backup_crashed, exception => Class, reason => Reason, stacktrace => Stack
                }),
                {error, #{reason => {crashed, Class, Reason}}}
        end,
    Base = #{started_at => StartedAt, duration_ms => erlang:monotonic_time(millisecond) - T0},
    case Outcome of
        {ok, Fields} ->
            Report = maps:merge(Fields, Base),
            ?LOG_INFO(#{
                msg => backup_done,
                file => maps:get(file, Report),
                size => maps:get(size, Report),
                duration_ms => maps:get(duration_ms, Report),
                pruned => maps:get(pruned, Report)
            }),
            {ok, Report};
        {error, Fields = #{reason := Why}} ->
            Report = maps:merge(Fields#{error => format_error(Why)}, Base),
            ?LOG_WARNING(
                maps:with([file, removed, reason, error, duration_ms], Report#{msg => backup_failed})
            ),
            {error, Report}
    end.

do_run(Keep, Timeout, StartedAt) ->
    Dir = emqx_guard_emqx:backup_dir(),
    Before = export_entries(Dir),
    %% what this run may have made: export names timed (node local time) from its start on
    Since = StartedAt - 1000,
    case emqx_guard_emqx:export(Timeout) of
        {ok, #{filename := Path, size := Size}} ->
            check(Path, Size, Keep, Dir, {Before, Since});
        {error, Reason} ->
            Removed = remove_new(Dir, Before, Since),
            {error, #{reason => Reason, removed => Removed}}
    end.

check(Path, Size, Keep, Dir, {Before, Since}) ->
    Name = filename:basename(Path),
    %% private at once: not world-readable while it is verified and pruned, nor when it is kept
    %% unverified
    ModeFields = make_private(Path, Name),
    case nif(fun() -> emqx_guard_nif:verify(Path) end) of
        {ok, #{sha256 := Sha, version := Version}} ->
            {Pruned, PruneFields} = prune(filename:dirname(Path), Keep, Path),
            {ok,
                maps:merge(
                    maps:merge(PruneFields, ModeFields),
                    #{
                        file => Name,
                        path => Path,
                        size => Size,
                        sha256 => Sha,
                        version => Version,
                        pruned => Pruned
                    }
                )};
        {error, {nif_error, _} = Why} ->
            %% The verifier could not run at all: keep the file, it may well be good.
            {error, maps:merge(ModeFields, #{reason => {verify_unavailable, Why}, file => Name})};
        {error, Why} ->
            Removed =
                case file:delete(Path) of
                    ok -> [Name];
                    {error, enoent} -> [];
                    {error, Posix} ->
                        ?LOG_WARNING(#{msg => backup_not_removed, file => Name, reason => Posix}),
                        []
                end,
            {error, #{
                reason => {verify_failed, Why},
                file => Name,
                removed => lists:usort(Removed ++ remove_new(Dir, Before, Since))
            }}
    end.

make_private(Path, Name) ->
    case file:change_mode(Path, 8#600) of
        ok ->
            #{};
        {error, Posix} ->
            ModeError = text("could not make ~ts private (mode 0600): ~ts", [Name, file:format_error(Posix)]),
            ?LOG_WARNING(#{msg => backup_mode_not_set, file => Name, reason => Posix}),
            #{mode_error => ModeError}
    end.

prune(Dir, Keep, Protect) ->
    case nif(fun() -> emqx_guard_nif:prune(bin(Dir), Keep, bin(Protect), false) end) of
        {ok, #{deleted := Deleted, failed := Failed} = Report} ->
            Names = [N || #{name := N} <- Deleted],
            FailedPairs = [{N, E} || #{name := N, error := E} <- Failed],
            SkippedPairs = [{N, E} || #{name := N, error := E} <- maps:get(skipped_unverified, Report, [])],
            lists:foreach(
                fun({N, E}) -> ?LOG_WARNING(#{msg => backup_prune_failed, file => N, error => E}) end,
                FailedPairs
            ),
            lists:foreach(
                fun({N, E}) -> ?LOG_WARNING(#{msg => backup_unverified_kept, file => N, error => E}) end,
                SkippedPairs
            ),
            {Names, #{prune_failed => FailedPairs, prune_skipped => SkippedPairs}};
        {error, {_Reason, Detail}} ->
            ?LOG_WARNING(#{msg => backup_prune_failed, dir => Dir, error => Detail}),
            {[], #{prune_failed => [], prune_skipped => [], prune_error => Detail}}
    end.

%% The export-named entries (files and EMQX's staging directories) in Dir, or `unknown' when the
%% directory cannot be read (then nothing will be removed).
export_entries(Dir) ->
    case file:list_dir(Dir) of
        {ok, Names} -> {ok, [N || N <- Names, is_export_entry(N)]};
        {error, enoent} -> {ok, []};
        {error, _} -> unknown
    end.

is_export_entry(Name) ->
    re:run(Name, ?EXPORT_RE, [{capture, none}, unicode]) =:= match.

%% Removes what appeared in Dir since Before and is named from Since (Unix ms) on, in the node's
%% local time as EMQX names exports: export-named regular files and export-named staging
%% directories. An export someone else started earlier (an older name), symlinks and anything
%% else are left alone.
remove_new(_Dir, unknown, _Since) ->
    [];
remove_new(Dir, {ok, Before}, Since) ->
    case export_entries(Dir) of
        {ok, After} ->
            From = local_stamp(Since),
            Ours = [N || N <- After -- Before, name_stamp(N) >= From],
            lists:sort(lists:filtermap(fun(Name) -> remove_entry(Dir, Name) end, Ours));
        unknown ->
            []
    end.

%% `YYYY-MM-DD-HH-MM-SS.mmm' of an export name (the names are fixed-width, so these compare in
%% time order as strings).
name_stamp("emqx-export-" ++ Rest) ->
    lists:sublist(Rest, 23).

local_stamp(Ms) ->
    {{Y, Mo, D}, {H, Mi, S}} = calendar:system_time_to_local_time(Ms div 1000, second),
    lists:flatten(
        io_lib:format("~4..0b-~2..0b-~2..0b-~2..0b-~2..0b-~2..0b.~3..0b", [Y, Mo, D, H, Mi, S, Ms rem 1000])
    ).

remove_entry(Dir, Name) ->
    Path = filename:join(Dir, Name),
    IsTar = lists:suffix(".tar.gz", Name),
    Result =
        case file:read_link_info(Path) of
            {ok, #file_info{type = regular}} when IsTar -> file:delete(Path);
            {ok, #file_info{type = directory}} when not IsTar -> file:del_dir_r(Path);
            _ -> skip
        end,
    case Result of
        ok ->
            ?LOG_INFO(#{msg => backup_partial_removed, file => bin(Name)}),
            {true, bin(Name)};
        skip ->
            false;
        {error, Posix} ->
            ?LOG_WARNING(#{msg => backup_partial_not_removed, file => bin(Name), reason => Posix}),
            false
    end.

%%--------------------------------------------------------------------
%% Views
%%--------------------------------------------------------------------

%% @doc The EMQX exports in Dir, newest first, each verified. A directory that does not exist
%% (no export has run yet) has none.
-spec list(file:filename_all()) -> {ok, [listed_backup()]} | {error, binary()}.
list(Dir) ->
    with_dir(Dir, fun() ->
        case nif(fun() -> emqx_guard_nif:list_backups(bin(Dir)) end) of
            {ok, Backups} ->
                {ok, [B#{verified => verified(Path)} || #{path := Path} = B <- Backups]};
            {error, {_, Detail}} ->
                {error, Detail}
        end
    end).

verified(Path) ->
    case nif(fun() -> emqx_guard_nif:verify(Path) end) of
        {ok, _} -> ok;
        {error, {_, Detail}} -> {error, Detail}
    end.

%% @doc What retention would delete in Dir now, keeping the newest Keep that verify (oldest
%% first). Nothing is deleted.
-spec prune_preview(file:filename_all(), pos_integer()) -> {ok, [backup()]} | {error, binary()}.
prune_preview(Dir, Keep) ->
    case prune_plan(Dir, Keep) of
        {ok, #{delete := Would}} -> {ok, Would};
        {error, _} = Error -> Error
    end.

%% @doc Retention's plan for Dir now (nothing is deleted): `delete', the exports it would delete,
%% and `skipped_unverified', the exports newer than the oldest kept verified one that do not
%% verify (neither counted toward Keep nor deleted), each with the verifier's `error' line. Both
%% lists oldest first.
-spec prune_plan(file:filename_all(), pos_integer()) ->
    {ok, #{delete := [backup()], skipped_unverified := [#{name := binary(), error := binary(), _ => _}]}}
    | {error, binary()}.
prune_plan(Dir, Keep) ->
    case file:read_file_info(Dir) of
        {error, enoent} ->
            {ok, #{delete => [], skipped_unverified => []}};
        _ ->
            case nif(fun() -> emqx_guard_nif:prune(bin(Dir), Keep, undefined, true) end) of
                {ok, #{deleted := Would} = Report} ->
                    {ok, #{delete => Would, skipped_unverified => maps:get(skipped_unverified, Report, [])}};
                {error, {_, Detail}} ->
                    {error, Detail}
            end
    end.

with_dir(Dir, F) ->
    case file:read_file_info(Dir) of
        {error, enoent} -> {ok, []};
        _ -> F()
    end.

%%--------------------------------------------------------------------
%% Errors
%%--------------------------------------------------------------------

%% @doc One line a person understands for a run's failure reason.
-spec format_error(term()) -> binary().
format_error(export_unavailable) ->
    <<"this EMQX has no data export (emqx_mgmt_data_backup is missing; EMQX 5.1 or newer is needed)">>;
format_error({export_timeout, Ms}) when is_integer(Ms), Ms rem 1000 =:= 0 ->
    text("export timed out after ~b s", [Ms div 1000]);
format_error({export_timeout, Ms}) ->
    text("export timed out after ~tp ms", [Ms]);
format_error({export_failed, Reason}) ->
    text("export failed: ~ts", [describe(Reason)]);
format_error({export_crashed, Class, Reason}) ->
    text("export crashed (~ts): ~ts", [Class, describe(Reason)]);
format_error({verify_failed, {_Reason, Detail}}) ->
    text("verification failed: ~ts", [describe(Detail)]);
format_error({verify_unavailable, {nif_error, Detail}}) ->
    text("could not verify the new backup, kept it unverified: ~ts", [describe(Detail)]);
format_error({crashed, Class, Reason}) ->
    text("the backup run crashed (~ts): ~ts", [Class, describe(Reason)]);
format_error(Reason) ->
    describe(Reason).

%% Text for a reason of unknown shape: strings as they are, POSIX atoms in words, terms printed
%% short; always one line.
describe(Reason) ->
    Text =
        case printable(Reason) of
            {true, Str} ->
                Str;
            false ->
                case Reason of
                    {badmatch, {error, Inner}} ->
                        describe(Inner);
                    {error, Inner} ->
                        describe(Inner);
                    A when is_atom(A) ->
                        case file:format_error(A) of
                            "unknown POSIX error" ++ _ -> atom_to_list(A);
                            Posix -> Posix
                        end;
                    _ ->
                        io_lib:format("~0tP", [Reason, 12])
                end
        end,
    one_line(Text).

printable(B) when is_binary(B) ->
    case unicode:characters_to_list(B) of
        L when is_list(L) -> printable(L);
        _ -> false
    end;
printable(L) when is_list(L), L =/= [] ->
    case io_lib:printable_unicode_list(L) of
        true -> {true, L};
        false -> false
    end;
printable(_) ->
    false.

one_line(Text) ->
    Flat = unicode:characters_to_binary(Text),
    Line = re:replace(Flat, "\\s*[\\r\\n]+\\s*", " ", [global, unicode, {return, binary}]),
    string:trim(Line).

nif(F) ->
    try
        F()
    catch
        Class:Reason ->
            ?LOG_ERROR(#{msg => emqx_guard_nif_call_failed, exception => Class, reason => Reason}),
            {error, {nif_error, text("the emqx_guard engine is not usable: ~0tP", [Reason, 12])}}
    end.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).

bin(B) when is_binary(B) -> B;
bin(L) -> unicode:characters_to_binary(L).
