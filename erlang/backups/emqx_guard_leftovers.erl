%% @doc What exports killed with their node left (`kill -9', the OOM killer, a power cut), found
%% and removed when the plugin starts (`start_link/0', a temporary child of the supervisor that
%% sweeps once and ends) and before each run (`sweep/1'), by these rules:
%% <ul>
%% <li>the plugin's own staging directories (`emqx_guard_export_files'): each one nobody can
%%     still be writing (at start: made before this node started, as its name says, or not
%%     written to for longer than `export_timeout'; before a run: all, as runs go one at a time);
%%     a tarball in one that verifies is moved into place and recorded, everything else in it is
%%     removed;</li>
%% <li>EMQX's staging directories (an export name without `.tar.gz') on the top level of the
%%     backup directory that nobody can still be writing: the export was started before this
%%     node started (the time in its name, EMQX's local time, read as the latest instant it can
%%     stand for), or nothing in it was written for longer than `export_timeout';</li>
%% <li>export-named files on the top level that nobody can still be writing (the same rule),
%%     last written within `export_timeout' of the time in their name (as an export is; not a
%%     file copied, renamed or touched later), newer than the newest backup recorded as good,
%%     without a good record, and not whole (the verifier finds them empty or cut short); one
%%     that verifies is kept and recorded.</li>
%% </ul>
%% Never touched: files under other names (uploads), symlinks, other subdirectories (namespaced
%% backups in `ns/', incoming copies), whole files that do not verify. Each removal is logged
%% and noted in `<data_dir>/emqx_guard/leftovers.eterm' for `guard backup_status', which shows it
%% once (`status_lines/0').
-module(emqx_guard_leftovers).

-include_lib("kernel/include/file.hrl").
-include_lib("kernel/include/logger.hrl").

-export([start_link/0, sweep/1, status_lines/0]).
%% proc_lib entry of the sweep at start
-export([sweep_at_start/1]).

-export_type([found/0]).

%% One thing the sweep found: removed (`partial', a tarball cut short; `staging_dir', EMQX's
%% staging directory; `not_placed', a complete tarball whose name was taken in the backup
%% directory), or `kept' (a complete export, now in the backup directory and recorded).
-type found() :: #{name := binary(), what := partial | staging_dir | not_placed | kept, at := integer()}.

%% What the sweep noted and `guard backup_status' has not shown yet.
-define(NOTICE, "leftovers.eterm").
%% The note's format (`emqx_guard_store'); its tag is the module that wrote it first.
-define(NOTICE_FORMAT, #{tag => emqx_guard_export_files, version => 1}).
-define(NOTICE_MAX, 100).
%% Without an export timeout: how long an export may be silent before it counts as dead.
-define(DEFAULT_QUIET_MS, 24 * 3600 * 1000).
%% Verifier reasons that mean "not a whole file" (an export cut short), as opposed to a whole
%% file of the wrong kind, which is someone's and left alone.
-define(NOT_WHOLE, [empty_file, truncated]).

%% @doc The sweep at start, as a temporary child of the supervisor: acknowledges at once (the
%% plugin's start never waits for it), sweeps once with `export_timeout' as the quiet bound, ends.
-spec start_link() -> {ok, pid()}.
start_link() ->
    proc_lib:start_link(?MODULE, sweep_at_start, [self()]).

%% @private
-spec sweep_at_start(pid()) -> ok.
sweep_at_start(Parent) ->
    proc_lib:init_ack(Parent, {ok, self()}),
    Quiet =
        case maps:get(export_timeout, emqx_guard_settings:get(), undefined) of
            S when is_integer(S), S > 0 -> S * 1000;
            _ -> ?DEFAULT_QUIET_MS
        end,
    _ = sweep(#{at => start, quiet_ms => Quiet}),
    ok.

%% @doc Removes what interrupted exports left in the backup directory (see the module doc):
%% `at' is `start' (the plugin starts: a staging directory of its own may belong to a run that
%% started since) or `run' (before a run: no other run is going); `quiet_ms' is how long an
%% export must not have written anything to count as interrupted (the export timeout). Returns
%% what it found; never raises.
-spec sweep(#{at := start | run, quiet_ms := pos_integer() | infinity}) -> [found()].
sweep(#{at := At, quiet_ms := QuietMs}) ->
    try
        Dir = emqx_guard_emqx:backup_dir(),
        Now = erlang:system_time(millisecond),
        Dead = dead_fun(Now, QuietMs),
        Own =
            case At of
                run -> fun(_, _) -> true end;
                start -> Dead
            end,
        Found = own_staging(Dir, Own, Now) ++ top_level(Dir, Dead, bounded(QuietMs), Now),
        ok = note(Found),
        Found
    catch
        Class:Reason:Stack ->
            ?LOG_WARNING(#{msg => emqx_guard_leftover_sweep_failed, exception => Class, reason => Reason, stacktrace => Stack}),
            []
    end.

%% @doc The lines `guard backup_status' shows about what the sweep removed or kept since they
%% were last shown; shown once (the note is dropped as it is read).
-spec status_lines() -> [binary()].
status_lines() ->
    Path = emqx_guard_store:path(?NOTICE),
    case emqx_guard_store:load(Path, ?NOTICE_FORMAT) of
        {ok, Found} when is_list(Found), Found =/= [] ->
            _ = file:delete(Path),
            Zone = maps:get(backup_timezone, emqx_guard_settings:get(), <<"local">>),
            [<<"left by interrupted exports:">> | [found_line(F, Zone) || F = #{name := _, what := _, at := _} <- Found]];
        none ->
            [];
        %% a newer plugin's note stays for it (said by the store)
        newer ->
            [];
        _EmptyOrDamaged ->
            _ = file:delete(Path),
            []
    end.

found_line(#{name := Name, what := What, at := At}, Zone) ->
    Said =
        case What of
            partial -> <<"cut short, removed">>;
            staging_dir -> <<"EMQX's staging directory, removed">>;
            not_placed -> <<"complete, but its name was taken in the backup directory: removed">>;
            kept -> <<"complete, kept as a backup">>
        end,
    iolist_to_binary(["  ", Name, ": ", Said, " (", emqx_guard_render:in_zone(Zone, At), ")"]).

note([]) ->
    ok;
note(Found) ->
    Path = emqx_guard_store:path(?NOTICE),
    Before =
        case emqx_guard_store:load(Path, ?NOTICE_FORMAT) of
            {ok, Old} when is_list(Old) -> Old;
            _ -> []
        end,
    All = Before ++ Found,
    Kept = lists:nthtail(max(length(All) - ?NOTICE_MAX, 0), All),
    case emqx_guard_store:save(Path, ?NOTICE_FORMAT, Kept) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_leftover_note_not_saved, reason => emqx_guard_outcome:format_error(Why)})
    end.

%% Nobody can still be writing something born (Unix ms) before this node started, or not
%% changed for QuietMs.
dead_fun(Now, QuietMs) ->
    NodeStart = Now - (erlang:monotonic_time(millisecond) - erlang:convert_time_unit(erlang:system_info(start_time), native, millisecond)),
    Quiet =
        case QuietMs of
            infinity -> fun(_ChangedAt) -> false end;
            _ -> fun(ChangedAt) -> ChangedAt < Now - QuietMs end
        end,
    fun(BornAt, ChangedAt) -> BornAt < NodeStart orelse Quiet(ChangedAt) end.

%% When the plugin made a staging directory of its own: its name starts with it
%% (`emqx_guard_export_files:prepare/1').
run_born(Run) ->
    case string:to_integer(Run) of
        {Ms, "-" ++ _} when is_integer(Ms) -> Ms;
        _ -> 0
    end.

%% The latest Unix ms an export name (or its staging directory's) can stand for: EMQX writes its
%% node's local time, which a DST change makes ambiguous for an hour; `infinity' when it is no
%% local time at all (then it is never taken as old).
name_born(Name) ->
    case io_lib:fread("emqx-export-~4d-~2d-~2d-~2d-~2d-~2d.~3d", Name) of
        {ok, [Y, Mo, D, H, Mi, S, Ms], _} ->
            try calendar:local_time_to_universal_time_dst({{Y, Mo, D}, {H, Mi, S}}) of
                [] -> infinity;
                Utcs -> lists:max([(calendar:datetime_to_gregorian_seconds(U) - 62167219200) * 1000 + Ms || U <- Utcs])
            catch
                _:_ -> infinity
            end;
        _ ->
            infinity
    end.

%% The plugin's staging directories, each a run's.
own_staging(Dir, Dead, Now) ->
    Root = emqx_guard_export_files:staging_root(Dir),
    Found = lists:flatmap(
        fun(Run) ->
            RunDir = filename:join(Root, Run),
            case Dead(run_born(Run), last_change(RunDir)) of
                true -> run_leftovers(Dir, RunDir, Now);
                false -> []
            end
        end,
        entries(Root)
    ),
    _ = file:del_dir(Root),
    Found.

run_leftovers(Dir, RunDir, Now) ->
    Found = lists:flatmap(
        fun(Name) ->
            Path = filename:join(RunDir, Name),
            case kind(Path, Name) of
                tarball ->
                    case check(Path) of
                        {complete, Record} ->
                            case emqx_guard_export_files:move(Path, filename:join(Dir, Name)) of
                                ok ->
                                    ok = emqx_guard_verifications:add([Record]),
                                    [found(Name, kept, Now)];
                                {error, _} ->
                                    [found(Name, not_placed, Now)]
                            end;
                        _ ->
                            [found(Name, partial, Now)]
                    end;
                staging_dir ->
                    [found(Name ++ "/", staging_dir, Now)];
                other ->
                    []
            end
        end,
        entries(RunDir)
    ),
    case file:del_dir_r(RunDir) of
        ok ->
            Found;
        {error, Posix} ->
            ?LOG_WARNING(#{msg => emqx_guard_leftover_not_removed, dir => bin(RunDir), reason => Posix}),
            [F || F = #{what := kept} <- Found]
    end.

bounded(infinity) -> ?DEFAULT_QUIET_MS;
bounded(Ms) -> Ms.

%% EMQX's staging directories and cut-short exports on the top level of the backup directory;
%% WriteMs: how long after its start an export may have written its tarball.
top_level(Dir, Dead, WriteMs, Now) ->
    Records = emqx_guard_verifications:records(),
    Good = [N || #{name := N, result := ok} <- Records],
    NewestGood = lists:max([0 | [Ns div 1000000 || #{result := ok, mtime_ns := Ns} <- Records, is_integer(Ns)]]),
    lists:flatmap(
        fun(Name) ->
            Path = filename:join(Dir, Name),
            case kind(Path, Name) of
                staging_dir ->
                    case Dead(name_born(Name), last_change(Path)) andalso remove_leftover(Path) of
                        true -> [found(Name ++ "/", staging_dir, Now)];
                        false -> []
                    end;
                tarball ->
                    Staging = filename:join(Dir, filename:basename(Name, ".tar.gz")),
                    Changed = max(last_change(Path), last_change(Staging)),
                    Born = name_born(Name),
                    Candidate =
                        is_integer(Born) andalso Dead(Born, Changed) andalso Changed =< Born + WriteMs andalso
                            Changed > NewestGood andalso not lists:member(bin(Name), Good),
                    case Candidate of
                        true -> cut_short(Path, Name, Now);
                        false -> []
                    end;
                other ->
                    []
            end
        end,
        entries(Dir)
    ).

%% An export-named file on the top level nobody writes to: removed if the verifier finds it cut
%% short; kept and recorded if it verifies; anything else (a whole file of the wrong kind, no
%% verdict) left as it is.
cut_short(Path, Name, Now) ->
    case emqx_guard_backups:check(Path) of
        {ok, Record = #{result := ok}} ->
            ok = emqx_guard_verifications:add([Record]),
            ?LOG_WARNING(#{msg => emqx_guard_backup_leftover_kept, file => bin(Name)}),
            [found(Name, kept, Now)];
        {ok, Record = #{result := {error, {Reason, _}}}} ->
            case lists:member(Reason, ?NOT_WHOLE) andalso remove_leftover(Path) of
                true -> [found(Name, partial, Now)];
                false -> ok = emqx_guard_verifications:add([Record]), []
            end;
        {error, _} ->
            []
    end.

check(Path) ->
    case emqx_guard_backups:check(Path) of
        {ok, Record = #{result := ok}} -> {complete, Record};
        _ -> incomplete
    end.

found(Name, What, Now) ->
    Log =
        case What of
            kept -> emqx_guard_backup_leftover_kept;
            _ -> emqx_guard_backup_leftover_removed
        end,
    ?LOG_WARNING(#{msg => Log, file => bin(Name), what => What, reason => <<"left by an interrupted export">>}),
    #{name => bin(Name), what => What, at => Now}.

remove_leftover(Path) ->
    Result =
        case filelib:is_dir(Path) of
            true -> file:del_dir_r(Path);
            false -> file:delete(Path)
        end,
    case Result of
        ok ->
            true;
        {error, Posix} ->
            ?LOG_WARNING(#{msg => emqx_guard_leftover_not_removed, file => bin(Path), reason => Posix}),
            false
    end.

%% What an entry of a backup or staging directory is: an export-named regular file, EMQX's
%% staging directory (an export name without `.tar.gz'), or anything else (symlinks included).
kind(Path, Name) ->
    case file:read_link_info(Path) of
        {ok, #file_info{type = regular}} ->
            case emqx_guard_core:is_export_name(Name) of
                true -> tarball;
                false -> other
            end;
        {ok, #file_info{type = directory}} ->
            case emqx_guard_core:is_export_name(Name ++ ".tar.gz") of
                true -> staging_dir;
                false -> other
            end;
        _ ->
            other
    end.

entries(Dir) ->
    case file:list_dir(Dir) of
        {ok, Names} -> lists:sort(Names);
        {error, _} -> []
    end.

%% When Path or anything in it last changed (Unix ms, rounded up: file times have seconds), or 0
%% when it does not exist. Symlinks are not followed.
last_change(Path) ->
    case file:read_link_info(Path, [{time, posix}]) of
        {ok, #file_info{type = directory, mtime = M}} ->
            lists:max([(M + 1) * 1000 | [last_change(filename:join(Path, N)) || N <- entries(Path)]]);
        {ok, #file_info{mtime = M}} ->
            (M + 1) * 1000;
        {error, _} ->
            0
    end.

bin(B) when is_binary(B) -> B;
bin(L) -> unicode:characters_to_binary(L).
