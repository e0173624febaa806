%% Common Test suite for one backup run (emqx_guard_backup) and the EMQX boundary
%% (emqx_guard_emqx), against the EMQX stand-ins in test/standins/ and real files in priv_dir.
-module(emqx_guard_backup_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1]).
-export([init_per_testcase/2, end_per_testcase/2]).
-export([ctl_callback/1]).
%% logger handler: forwards the plugin's reports to the test case
-export([log/2]).
-export([
    a_run_logs_one_report/1,
    success_path/1,
    retention_keeps_newest_and_foreign_files/1,
    retention_counts_only_verified_backups/1,
    export_error_tuple/1,
    export_exception/1,
    export_hang_is_killed/1,
    export_partial_file_removed/1,
    export_partial_then_raise/1,
    export_disk_full/1,
    export_wrong_top_dir_not_kept_no_prune/1,
    export_empty_file/1,
    export_module_absent/1,
    no_stray_messages_in_trapping_caller/1,
    new_file_private_before_verify/1,
    failed_run_keeps_an_export_someone_else_started/1,
    list_real_fixture_verified/1,
    list_and_preview_views/1,
    format_error_lines/1,
    alarm_activate_deactivate/1,
    alarm_without_emqx_alarm/1,
    command_register_run_unregister/1,
    command_usage_listing/1,
    usage_tilde_printed_literally/1,
    print_and_usage_without_emqx_ctl/1,
    dirs_and_role/1
]).

%% A real export made by EMQX 5.3.2 (kept under its own name: verification depends on it).
-define(FIXTURE_DIR, filename:join([filename:dirname(?FILE), "fixtures", "emqx-5.3.2"])).
-define(FIXTURE, "emqx-export-2026-11-27-18-58-45.951.tar.gz").
-define(EXPORT_RE, "^emqx-export-[0-9]{4}(-[0-9]{2}){5}\\.[0-9]{3}\\.tar\\.gz$").

all() ->
    [{group, backup_run}, {group, views}, {group, boundary}].

groups() ->
    [
        {backup_run, [], [
            success_path,
            a_run_logs_one_report,
            retention_keeps_newest_and_foreign_files,
            retention_counts_only_verified_backups,
            export_error_tuple,
            export_exception,
            export_hang_is_killed,
            export_partial_file_removed,
            export_partial_then_raise,
            export_disk_full,
            export_wrong_top_dir_not_kept_no_prune,
            export_empty_file,
            export_module_absent,
            no_stray_messages_in_trapping_caller,
            new_file_private_before_verify,
            failed_run_keeps_an_export_someone_else_started
        ]},
        {views, [], [list_real_fixture_verified, list_and_preview_views, format_error_lines]},
        {boundary, [], [
            alarm_activate_deactivate,
            alarm_without_emqx_alarm,
            command_register_run_unregister,
            command_usage_listing,
            usage_tilde_printed_literally,
            print_and_usage_without_emqx_ctl,
            dirs_and_role
        ]}
    ].

init_per_suite(Config) ->
    %% the NIF must answer, or every case here is meaningless
    case try emqx_guard_nif:list_backups(list_to_binary(?config(priv_dir, Config))) catch C:R -> {C, R} end of
        {ok, _} -> Config;
        Other -> ct:fail({nif_not_usable, Other})
    end.

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

init_per_testcase(TC, Config) ->
    DataDir = filename:join(?config(priv_dir, Config), atom_to_list(TC)),
    ok = filelib:ensure_dir(filename:join([DataDir, "backup", "x"])),
    emqx:set_data_dir(DataDir),
    ok = emqx_mgmt_data_backup:reset(),
    ok = emqx_alarm:reset(),
    ok = mria_rlog:reset(),
    [{data_dir, DataDir}, {backup_dir, filename:join(DataDir, "backup")} | Config].

end_per_testcase(_TC, _Config) ->
    {module, _} = code:ensure_loaded(emqx_mgmt_data_backup),
    ok = emqx_mgmt_data_backup:reset(),
    ok = emqx_ctl:unregister_command(guard),
    %% a replicant role left behind would make later suites' node skip every scheduled fire
    ok = mria_rlog:reset(),
    ok.

%%--------------------------------------------------------------------
%% A run
%%--------------------------------------------------------------------

success_path(Config) ->
    Dir = ?config(backup_dir, Config),
    Before = erlang:system_time(millisecond),
    {ok, R} = run_backup(#{keep => 5, export_timeout => 30000}),
    After = erlang:system_time(millisecond),
    #{file := File, path := Path, size := Size, sha256 := Sha, version := Version} = R,
    ?assertMatch(match, re:run(File, ?EXPORT_RE, [{capture, none}])),
    ?assertEqual(filename:join(Dir, binary_to_list(File)), binary_to_list(Path)),
    {ok, Bin} = file:read_file(Path),
    ?assertEqual(byte_size(Bin), Size),
    ?assertEqual(hex(crypto:hash(sha256, Bin)), Sha),
    ?assertEqual(<<"5.3.2">>, Version),
    {ok, #file_info{mode = Mode}} = file:read_file_info(Path),
    ?assertEqual(8#600, Mode band 8#777),
    ?assertEqual([], maps:get(pruned, R)),
    ?assertEqual([], maps:get(prune_failed, R)),
    ?assert(maps:get(started_at, R) >= Before andalso maps:get(started_at, R) =< After),
    ?assert(is_integer(maps:get(duration_ms, R)) andalso maps:get(duration_ms, R) >= 0),
    ?assertNot(maps:is_key(error, R)),
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    %% the tarball is what EMQX import expects: one top dir named as the file
    {ok, Names} = erl_tar:table(binary_to_list(Path), [compressed]),
    Top = filename:basename(binary_to_list(File), ".tar.gz"),
    ?assertEqual([Top], lists:usort([hd(filename:split(N)) || N <- Names])),
    %% EMQX's staging directory is gone, nothing else appeared but the plugins companion
    ?assertEqual(lists:sort([binary_to_list(File), companion(File)]), ls(Dir)),
    {ok, [Listed]} = emqx_guard_backups:list(Dir),
    ?assertMatch(#{name := File, verified := ok}, Listed).

%% Each run is logged once, under one name, with what an operator looks for.
a_run_logs_one_report(_Config) ->
    {ok, Level} = {ok, maps:get(level, logger:get_primary_config())},
    ok = logger:set_primary_config(level, info),
    ok = logger:add_handler(?MODULE, ?MODULE, #{config => #{pid => self()}}),
    try
        {ok, #{file := File}} = run_backup(#{keep => 5, export_timeout => 30000}),
        ok = emqx_mgmt_data_backup:set_mode({error, table_busy}),
        {error, #{error := Error}} = run_backup(#{keep => 5, export_timeout => 30000}),
        Reports = runs_logged(),
        ?assertMatch(
            [#{msg := emqx_guard_backup_done, file := File, trigger := manual},
             #{msg := emqx_guard_backup_failed, error := Error, trigger := manual}],
            Reports
        )
    after
        _ = logger:remove_handler(?MODULE),
        logger:set_primary_config(level, Level)
    end.

log(#{msg := {report, Report = #{msg := Msg}}}, #{config := #{pid := Pid}}) ->
    case atom_to_list(Msg) of
        "emqx_guard_backup_" ++ _ -> Pid ! {logged, Report};
        _ -> ok
    end;
log(_Event, _Config) ->
    ok.

runs_logged() ->
    receive
        {logged, R = #{msg := M}} when M =:= emqx_guard_backup_done; M =:= emqx_guard_backup_failed ->
            [R | runs_logged()];
        {logged, _Other} ->
            runs_logged()
    after 0 ->
        []
    end.

retention_keeps_newest_and_foreign_files(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = [old_export(Dir, Day) || Day <- lists:seq(1, 7)],
    ok = file:write_file(filename:join(Dir, "my-upload.tar.gz"), <<"uploaded through the API">>),
    ok = file:write_file(filename:join(Dir, "before-upgrade.tar.gz"), <<"named by hand">>),
    {ok, R} = run_backup(#{keep => 5, export_timeout => 30000}),
    New = binary_to_list(maps:get(file, R)),
    %% the 3 oldest went, oldest first
    ?assertEqual([list_to_binary(N) || N <- lists:sublist(Old, 3)], maps:get(pruned, R)),
    ?assertEqual(
        lists:sort([New, companion(New), "my-upload.tar.gz", "before-upgrade.tar.gz" | lists:nthtail(3, Old)]),
        ls(Dir)
    ),
    ?assertEqual({ok, <<"uploaded through the API">>}, file:read_file(filename:join(Dir, "my-upload.tar.gz"))),
    ?assertEqual({ok, <<"named by hand">>}, file:read_file(filename:join(Dir, "before-upgrade.tar.gz"))),
    {ok, Listed} = emqx_guard_backups:list(Dir),
    ?assertEqual([list_to_binary(N) || N <- [New | lists:reverse(lists:nthtail(3, Old))]], [
        N
     || #{name := N} <- Listed
    ]),
    ?assertEqual([ok], lists:usort([V || #{verified := V} <- Listed])).

%% Keep 2 with two good backups and junk under a far-future export name: the run keeps both good
%% ones (the new one and the newer good one count, the junk does not), leaves the junk alone and
%% says so; the dry run agrees.
retention_counts_only_verified_backups(Config) ->
    Dir = ?config(backup_dir, Config),
    Good = [old_export(Dir, Day) || Day <- [1, 2]],
    Junk = "emqx-export-2099-01-01-00-00-00.000.tar.gz",
    ok = file:write_file(filename:join(Dir, Junk), <<"not an export">>),
    {ok, R} = run_backup(#{keep => 2, export_timeout => 30000}),
    New = binary_to_list(maps:get(file, R)),
    [First, Second] = Good,
    ?assertEqual([list_to_binary(First)], maps:get(pruned, R)),
    ?assertMatch([{<<"emqx-export-2099-01-01-00-00-00.000.tar.gz">>, <<_/binary>>}], maps:get(prune_skipped, R)),
    ?assertEqual(lists:sort([Second, New, companion(New), Junk]), ls(Dir)),
    %% nothing more to delete; the plan names the junk
    {ok, #{delete := [], skipped_unverified := [#{name := JunkName, error := Why}]}} =
        emqx_guard_backups:plan(Dir, 2),
    ?assertEqual(list_to_binary(Junk), JunkName),
    ?assertMatch({match, _}, re:run(Why, "gzip")),
    ?assertMatch({ok, #{delete := []}}, emqx_guard_backups:plan(Dir, 2)),
    %% keep 1: the older good one goes, the junk (newer than the kept one) stays
    {ok, #{delete := [#{name := SecondName}], skipped_unverified := [_]}} = emqx_guard_backups:plan(Dir, 1),
    ?assertEqual(list_to_binary(Second), SecondName).

export_error_tuple(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    ok = emqx_mgmt_data_backup:set_mode({error, table_busy}),
    {error, R} = run_backup(#{keep => 1, export_timeout => 30000}),
    ?assertEqual({export_failed, #{reason => table_busy}}, maps:get(reason, R)),
    ?assertEqual(<<"export failed: table_busy">>, maps:get(error, R)),
    ?assertEqual([], maps:get(removed, R)),
    ?assertEqual(Old, ls(Dir)).

export_exception(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    ok = emqx_mgmt_data_backup:set_mode(raise),
    {error, R} = run_backup(#{keep => 1, export_timeout => 30000}),
    %% EMQX could not make its backup directory: said in words, the raw reason kept inside
    ?assertMatch({export_disk_error, #{posix := eacces, dir := _, raw := {export_crashed, #{class := error, reason := {badmatch, {error, eacces}}}}}},
        maps:get(reason, R)),
    ?assertEqual(
        <<"export failed: permission denied in ", (list_to_binary(Dir))/binary, ": EMQX's user must be able to write there">>,
        maps:get(error, R)
    ),
    ?assertEqual(Old, ls(Dir)).

export_hang_is_killed(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    ok = emqx_mgmt_data_backup:set_mode({hang, 60000}),
    {error, R} = run_backup(#{keep => 1, export_timeout => 300}),
    ?assertEqual({export_timeout, #{timeout_ms => 300}}, maps:get(reason, R)),
    ?assertEqual(<<"export timed out after 300 ms">>, maps:get(error, R)),
    %% the export process is gone, so nothing will appear later
    ExportPid = emqx_mgmt_data_backup:last_export_pid(),
    ?assert(is_pid(ExportPid)),
    ?assertNot(is_process_alive(ExportPid)),
    %% whatever it had started (partial tarball, staging dir) was removed; earlier ones kept
    ?assertEqual(Old, ls(Dir)),
    [?assertNot(lists:member(binary_to_list(N), Old)) || N <- maps:get(removed, R)],
    ?assertEqual(<<"export timed out after 600 s">>, emqx_guard_outcome:format_error({export_timeout, #{timeout_ms => 600000}})).

export_partial_file_removed(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    ok = emqx_mgmt_data_backup:set_mode(partial),
    {error, R} = run_backup(#{keep => 1, export_timeout => 30000}),
    ?assertEqual({export_failed, #{reason => {badmatch, {error, "i/o error"}}}}, maps:get(reason, R)),
    ?assertEqual(<<"export failed: i/o error">>, maps:get(error, R)),
    [Removed] = maps:get(removed, R),
    ?assertMatch(match, re:run(Removed, ?EXPORT_RE, [{capture, none}])),
    ?assertEqual(Old, ls(Dir)).

export_partial_then_raise(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    ok = emqx_mgmt_data_backup:set_mode(partial_raise),
    {error, R} = run_backup(#{keep => 1, export_timeout => 30000}),
    ?assertMatch({export_crashed, #{class := error, reason := {badmatch, _}}}, maps:get(reason, R)),
    ?assertMatch([_], maps:get(removed, R)),
    ?assertEqual(Old, ls(Dir)).

export_disk_full(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    ok = emqx_mgmt_data_backup:set_mode(disk_full),
    {error, R} = run_backup(#{keep => 1, export_timeout => 30000}),
    Error = maps:get(error, R),
    ?assertMatch(<<"export failed: no space left on device in ", _/binary>>, Error),
    ?assertMatch({match, _}, re:run(Error, "free once the failed export was removed; the last backup took about [0-9]+ B\\)$"), Error),
    ?assertMatch([_], maps:get(removed, R)),
    ?assertEqual(Old, ls(Dir)).

export_wrong_top_dir_not_kept_no_prune(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = [old_export(Dir, Day) || Day <- lists:seq(1, 7)],
    ok = emqx_mgmt_data_backup:set_mode(wrong_top_dir),
    {error, R} = run_backup(#{keep => 5, export_timeout => 30000}),
    ?assertMatch({verify_failed, {wrong_top_dir, _}}, maps:get(reason, R)),
    ?assertMatch(<<"verification failed: ", _/binary>>, maps:get(error, R)),
    File = maps:get(file, R),
    ?assertEqual([File], maps:get(removed, R)),
    %% the bad file is gone and no earlier backup was pruned although there are 7 > 5
    ?assertEqual(lists:sort(Old), ls(Dir)).

export_empty_file(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    ok = emqx_mgmt_data_backup:set_mode(empty_file),
    {error, R} = run_backup(#{keep => 1, export_timeout => 30000}),
    ?assertMatch({verify_failed, {empty_file, _}}, maps:get(reason, R)),
    ?assertEqual(Old, ls(Dir)).

export_module_absent(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    without_module(emqx_mgmt_data_backup, fun() ->
        ?assertNot(emqx_guard_emqx:export_supported()),
        ?assertEqual({error, {export_unavailable, {emqx_mgmt_data_backup, export, 0}}}, emqx_guard_emqx:export(1000, #{})),
        {error, R} = run_backup(#{keep => 1, export_timeout => 30000}),
        ?assertEqual({export_unavailable, {emqx_mgmt_data_backup, export, 0}}, maps:get(reason, R)),
        ?assertMatch({match, _}, re:run(maps:get(error, R), "no data export.*EMQX 5\\.1 or newer"))
    end),
    ?assert(emqx_guard_emqx:export_supported()),
    ?assertEqual(Old, ls(Dir)).

no_stray_messages_in_trapping_caller(_Config) ->
    %% A caller that traps exits (a gen_server) must not get 'EXIT' or 'DOWN' leftovers.
    Self = self(),
    Check = fun(Mode, Timeout) ->
        ok = emqx_mgmt_data_backup:set_mode(Mode),
        {Pid, MRef} = spawn_monitor(fun() ->
            process_flag(trap_exit, true),
            Result = run_backup(#{keep => 5, export_timeout => Timeout}),
            {messages, Left} = process_info(self(), messages),
            Self ! {self(), element(1, Result), Left}
        end),
        receive
            {Pid, Outcome, Left} ->
                receive
                    {'DOWN', MRef, process, Pid, normal} -> ok
                end,
                {Outcome, Left}
        end
    end,
    ?assertEqual({ok, []}, Check(ok, 30000)),
    ?assertEqual({error, []}, Check({hang, 60000}, 200)),
    ?assertEqual({error, []}, Check(raise, 30000)).

%% The new file is private (0600) while it is verified, and stays private when it is kept
%% unverified because the verifier cannot run.
new_file_private_before_verify(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    Self = self(),
    R = with_unavailable_verifier(
        fun(Path) ->
            {ok, #file_info{mode = Mode}} = file:read_file_info(Path),
            Self ! {mode_at_verify, Mode band 8#777}
        end,
        fun() -> run_backup(#{keep => 1, export_timeout => 30000}) end
    ),
    ?assertMatch({error, #{reason := {verify_unavailable, _}}}, R),
    {error, #{file := File, error := Error}} = R,
    ?assertMatch(<<"could not verify the new backup, kept it unverified: ", _/binary>>, Error),
    receive
        {mode_at_verify, AtVerify} -> ?assertEqual(8#600, AtVerify)
    after 0 -> ct:fail(verify_not_called)
    end,
    %% kept, private, and nothing earlier pruned (keep 1)
    ?assertEqual(lists:sort([binary_to_list(File) | Old]), ls(Dir)),
    {ok, #file_info{mode = Mode}} = file:read_file_info(filename:join(Dir, File)),
    ?assertEqual(8#600, Mode band 8#777).

%% A failed run removes what it made itself, not an export someone else started earlier that
%% appeared in the directory while this run was going (its name is older than this run).
failed_run_keeps_an_export_someone_else_started(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    ok = emqx_mgmt_data_backup:set_mode({hang, 60000}),
    Self = self(),
    Runner = spawn_link(fun() ->
        Self ! {self(), run_backup(#{keep => 1, export_timeout => 3000})}
    end),
    %% our export has started: its tarball and EMQX's staging dir are in the run's own staging
    %% directory (EMQX 5.8.5+ writes where out_dir says)
    ok = poll(fun emqx_mgmt_data_backup:hanging/0),
    [Staging] = filelib:wildcard(filename:join([Dir, ".emqx_guard_export", "*"])),
    Ours = [N ++ "/" || N <- ls(Staging), not lists:suffix(".tar.gz", N)] ++ [N || N <- ls(Staging), lists:suffix(".tar.gz", N)],
    ?assertEqual(Old, ls(Dir) -- [".emqx_guard_export"]),
    %% someone else's export, named (node local time) a minute before this run started
    {{Y, Mo, D}, {H, Mi, S}} = calendar:system_time_to_local_time(erlang:system_time(second) - 60, second),
    Theirs = lists:flatten(
        io_lib:format("emqx-export-~4..0b-~2..0b-~2..0b-~2..0b-~2..0b-~2..0b.123", [Y, Mo, D, H, Mi, S])
    ),
    write_export(Dir, Theirs),
    {error, R} =
        receive
            {Runner, Result} -> Result
        end,
    ?assertEqual({export_timeout, #{timeout_ms => 3000}}, maps:get(reason, R)),
    Removed = [binary_to_list(N) || N <- maps:get(removed, R)],
    ?assertEqual(lists:sort(Ours), lists:sort(Removed)),
    ?assertEqual(lists:sort([Theirs ++ ".tar.gz" | Old]), ls(Dir)).

%%--------------------------------------------------------------------
%% Views
%%--------------------------------------------------------------------

list_real_fixture_verified(Config) ->
    Dir = ?config(backup_dir, Config),
    {ok, _} = file:copy(filename:join(?FIXTURE_DIR, ?FIXTURE), filename:join(Dir, ?FIXTURE)),
    {ok, [Fixture]} = emqx_guard_backups:list(Dir),
    ?assertMatch(#{name := <<?FIXTURE>>, verified := ok, size := 1331}, Fixture),
    {ok, #{result := ok, version := <<"5.3.2">>}} = emqx_guard_backups:check(maps:get(path, Fixture), off, 60000),
    %% a run next to it keeps it (keep 5) and lists newest first, both verified
    {ok, R} = run_backup(#{keep => 5, export_timeout => 30000}),
    {ok, Listed} = emqx_guard_backups:list(Dir),
    ?assertEqual([maps:get(file, R), <<?FIXTURE>>], [N || #{name := N} <- Listed]),
    ?assertEqual([ok, ok], [V || #{verified := V} <- Listed]).

list_and_preview_views(Config) ->
    Dir = ?config(backup_dir, Config),
    %% no backup dir yet: nothing, not an error
    ?assertEqual({ok, []}, emqx_guard_backups:list(filename:join(Dir, "missing"))),
    ?assertEqual({ok, #{plan => [], delete => [], skipped_unverified => []}}, emqx_guard_backups:plan(filename:join(Dir, "missing"), 5)),
    Old = [old_export(Dir, Day) || Day <- lists:seq(1, 7)],
    %% a truncated copy of a good export under its own export name fails verification
    Good = filename:join(Dir, lists:last(Old)),
    {ok, Bin} = file:read_file(Good),
    Broken = "emqx-export-2025-02-01-00-00-00.000.tar.gz",
    ok = file:write_file(filename:join(Dir, Broken), binary:part(Bin, 0, byte_size(Bin) div 2)),
    {ok, Listed} = emqx_guard_backups:list(Dir),
    [First | Rest] = Listed,
    ?assertMatch(#{name := <<"emqx-export-2025-02-01-00-00-00.000.tar.gz">>, verified := {error, _}}, First),
    {error, {_, Why}} = maps:get(verified, First),
    ?assert(is_binary(Why) andalso byte_size(Why) > 0),
    ?assertEqual([ok], lists:usort([V || #{verified := V} <- Rest])),
    %% dry run with keep 5: the broken newest one does not count, so the 2 oldest of the 7 good
    %% ones would go; nothing is deleted
    {ok, #{delete := Would}} = emqx_guard_backups:plan(Dir, 5),
    ?assertEqual([list_to_binary(N) || N <- lists:sublist(Old, 2)], [N || #{name := N} <- Would]),
    {ok, #{delete := Would, skipped_unverified := [#{name := BrokenName}]}} = emqx_guard_backups:plan(Dir, 5),
    ?assertEqual(list_to_binary(Broken), BrokenName),
    ?assertEqual(lists:sort([Broken | Old]), ls(Dir)),
    {error, Refused = {retention_failed, {bad_keep, _}}} = emqx_guard_backups:plan(Dir, 0),
    ?assert(is_binary(emqx_guard_outcome:format_error(Refused))).

format_error_lines(_Config) ->
    Lines = [
        emqx_guard_outcome:format_error(R)
     || R <- [
            {export_unavailable, {emqx_mgmt_data_backup, export, 0}},
            {export_timeout, #{timeout_ms => 600000}},
            {export_timeout, #{timeout_ms => 1500}},
            {export_failed, #{reason => <<"multi\nline">>}},
            {export_failed, #{reason => {some, deep, [term, "x"]}}},
            {export_crashed, #{class => exit, reason => killed}},
            {verify_failed, {truncated, <<"gzip stream ends early">>}},
            {whatever, 1}
        ]
    ],
    [?assert(is_binary(L) andalso binary:match(L, <<"\n">>) =:= nomatch) || L <- Lines],
    ?assertEqual(<<"export timed out after 600 s">>, lists:nth(2, Lines)),
    ?assertEqual(<<"export failed: multi line">>, lists:nth(4, Lines)),
    ?assertEqual(<<"verification failed: gzip stream ends early">>, lists:nth(7, Lines)).

%%--------------------------------------------------------------------
%% The EMQX boundary
%%--------------------------------------------------------------------

alarm_activate_deactivate(_Config) ->
    Name = emqx_guard_backup_failed,
    ok = emqx_guard_alarm:restore_failed(<<"a">>, #{reason => <<"a">>}),
    ok = emqx_guard_alarm:restore_failed(<<"a">>, #{reason => <<"a">>}),
    ?assertEqual(
        [#{name => Name, details => #{reason => <<"a">>}, message => <<"emqx_guard: restore failed: a">>}],
        emqx_alarm:active_alarms()
    ),
    %% the same failure again does not churn the history
    ?assertEqual([], emqx_alarm:history()),
    %% EMQX itself leaves an active alarm as it is: the door says so
    ?assertEqual(already_active, emqx_guard_emqx:activate_alarm(Name, #{reason => <<"b">>}, <<"b">>)),
    %% a new reason replaces the old one
    ok = emqx_guard_alarm:restore_failed(<<"b">>, #{reason => <<"b">>}),
    ?assertEqual(
        [#{name => Name, details => #{reason => <<"b">>}, message => <<"emqx_guard: restore failed: b">>}],
        emqx_alarm:active_alarms()
    ),
    ?assertEqual([<<"emqx_guard: restore failed: a">>], [M || #{message := M} <- emqx_alarm:history()]),
    ok = emqx_guard_alarm:update(#{result => ok}),
    ok = emqx_guard_alarm:update(#{result => ok}),
    ?assertEqual([], emqx_alarm:active_alarms()),
    ?assertEqual(2, length(emqx_alarm:history())).

alarm_without_emqx_alarm(_Config) ->
    without_module(emqx_alarm, fun() ->
        ?assertEqual(unavailable, emqx_guard_emqx:active_alarms()),
        ?assertEqual(error, emqx_guard_emqx:activate_alarm(emqx_guard_backup_failed, #{}, <<"x">>)),
        ?assertEqual(ok, emqx_guard_alarm:restore_failed(<<"x">>, #{})),
        ?assertEqual(ok, emqx_guard_alarm:update(#{result => ok}))
    end),
    ?assertEqual([], emqx_alarm:active_alarms()).

command_register_run_unregister(_Config) ->
    ok = emqx_guard_emqx:register_command(?MODULE, ctl_callback),
    ?assertEqual({ok, {?MODULE, ctl_callback}}, emqx_ctl:lookup_command(guard)),
    %% the registration outlives the process that made it
    {_, MRef} = spawn_monitor(fun() -> ok = emqx_guard_emqx:register_command(?MODULE, ctl_callback) end),
    receive
        {'DOWN', MRef, process, _, normal} -> ok
    end,
    ?assertEqual({ok, {?MODULE, ctl_callback}}, emqx_ctl:lookup_command(guard)),
    {Result, Out} = emqx_guard_test_io:capture(fun() ->
        emqx_ctl:run_command(["guard", "backup_cron", "0 1 * * 0"])
    end),
    ?assertEqual(ok, Result),
    ?assertEqual("args: [\"backup_cron\",\"0 1 * * 0\"] 100% ~ done\n", Out),
    ok = emqx_guard_emqx:unregister_command(),
    _ = sys:get_state(emqx_ctl),
    ?assertEqual({error, cmd_not_found}, emqx_ctl:lookup_command(guard)),
    ok = emqx_guard_emqx:unregister_command().

command_usage_listing(_Config) ->
    ok = emqx_guard_emqx:register_command(?MODULE, ctl_callback),
    {ok, Out} = emqx_guard_test_io:capture(fun() -> emqx_ctl:run_command([]) end),
    Lines = string:split(Out, "\n", all),
    ?assertEqual("Usage: emqx ctl", hd(Lines)),
    %% EMQX's layout: the command column as wide as the widest command plus one, then "# "
    ?assert(lists:member("guard backup_cron            # Show the schedule", Lines)),
    ?assert(lists:member("guard backup_keep [N]        # Keep ~N backups (1..1000)", Lines)),
    ?assert(lists:member("guard backup_prune --dry-run # What retention would delete", Lines)).

print_and_usage_without_emqx_ctl(_Config) ->
    Usage = fun() -> emqx_guard_emqx:usage(usage_lines()) end,
    {ok, WithCtl} = emqx_guard_test_io:capture(Usage),
    {ok, PrintWithCtl} = emqx_guard_test_io:capture(fun() -> emqx_guard_emqx:print("~ts~n", ["a ~ b"]) end),
    without_module(emqx_ctl, fun() ->
        {ok, Without} = emqx_guard_test_io:capture(Usage),
        ?assertEqual(WithCtl, Without),
        {ok, PrintWithout} = emqx_guard_test_io:capture(fun() ->
            emqx_guard_emqx:print("~ts~n", ["a ~ b"])
        end),
        ?assertEqual("a ~ b\n", PrintWithout),
        %% a bad format is logged, not raised
        ?assertEqual(ok, emqx_guard_emqx:print("~b~n", [not_a_number])),
        ?assertEqual(ok, emqx_guard_emqx:register_command(?MODULE, ctl_callback)),
        ?assertEqual(ok, emqx_guard_emqx:unregister_command())
    end),
    ?assertEqual("a ~ b\n", PrintWithCtl),
    ?assertEqual(ok, emqx_guard_emqx:print("~b~n", [not_a_number])).

%% emqx_ctl:usage/1 uses the text as a format: a `~p' in a description must still print as is.
usage_tilde_printed_literally(_Config) ->
    {ok, Out} = emqx_guard_test_io:capture(fun() ->
        emqx_guard_emqx:usage([{"guard x", "Show ~p and ~~ and 100% ~"}])
    end),
    ?assertEqual("guard x # Show ~p and ~~ and 100% ~\n", Out).

dirs_and_role(Config) ->
    DataDir = ?config(data_dir, Config),
    ?assertEqual(DataDir, emqx_guard_emqx:data_dir()),
    ?assertEqual(filename:join(DataDir, "backup"), emqx_guard_emqx:backup_dir()),
    emqx:set_data_dir(<<"/var/lib/emqx">>),
    ?assertEqual("/var/lib/emqx/backup", emqx_guard_emqx:backup_dir()),
    ?assertEqual(core, emqx_guard_emqx:node_role()),
    ok = mria_rlog:set_role(replicant),
    ?assertEqual(replicant, emqx_guard_emqx:node_role()),
    without_module(mria_rlog, fun() -> ?assertEqual(core, emqx_guard_emqx:node_role()) end).

%%--------------------------------------------------------------------
%% helpers
%%--------------------------------------------------------------------

%% The `emqx ctl guard' callback these tests register: prints through the boundary module, with
%% a `~' in the data, and answers the atom usage.
ctl_callback(usage) ->
    emqx_guard_emqx:usage(usage_lines());
ctl_callback(Args) ->
    emqx_guard_emqx:print("args: ~0tp ~ts~n", [Args, "100% ~ done"]).

usage_lines() ->
    [
        {"guard backup_cron", "Show the schedule"},
        {"guard backup_keep [N]", "Keep ~N backups (1..1000)"},
        {<<"guard backup_prune --dry-run">>, <<"What retention would delete">>}
    ].

%% Runs F while Mod does not exist (as on an EMQX without it): unloaded, and its beam file
%% renamed for the time being. (Taking its directory off the code path is not enough: the code
%% server remembers where it loaded a module from.)
without_module(Mod, F) ->
    Beam = code:which(Mod),
    true = is_list(Beam),
    Hidden = Beam ++ ".hidden",
    _ = code:purge(Mod),
    true = code:delete(Mod),
    _ = code:purge(Mod),
    ok = file:rename(Beam, Hidden),
    try
        ?assertEqual({error, nofile}, code:ensure_loaded(Mod)),
        F()
    after
        ok = file:rename(Hidden, Beam),
        {module, Mod} = code:ensure_loaded(Mod)
    end.

%% Runs F while emqx_guard_nif:verify_async/2 cannot run: a stand-in module takes the NIF
%% module's place (it calls OnVerify(Path), then raises as an unloaded NIF does); the real module
%% (and its library) is loaded again afterwards.
%% One manual run with the real steps and no scheduler behind it: `{ok, Outcome}' for a good
%% backup, `{error, Outcome}' for a failed one.
run_backup(Request) ->
    case emqx_guard_run:run(Request#{trigger => manual}, #{}) of
        #{result := ok} = Outcome -> {ok, Outcome};
        Outcome -> {error, Outcome}
    end.

with_unavailable_verifier(OnVerify, F) ->
    persistent_term:put({?MODULE, on_verify}, OnVerify),
    Unloaded = [
        {call, 3, {remote, 3, {atom, 3, erlang}, {atom, 3, apply}}, [
            {call, 3, {remote, 3, {atom, 3, persistent_term}, {atom, 3, get}}, [
                {tuple, 3, [{atom, 3, ?MODULE}, {atom, 3, on_verify}]}
            ]},
            {cons, 3, {var, 3, 'Path'}, {nil, 3}}
        ]},
        {call, 3, {remote, 3, {atom, 3, erlang}, {atom, 3, error}}, [
            {tuple, 3, [{atom, 3, nif_not_loaded}, {string, 3, "stand-in"}, {atom, 3, enoent}]}
        ]}
    ],
    Forms = [
        {attribute, 1, module, emqx_guard_nif},
        {attribute, 2, export, [{verify_async, 2}]},
        {function, 4, verify_async, 2, [{clause, 4, [{var, 4, 'Path'}, {var, 4, '_Opts'}], [], Unloaded}]}
    ],
    {ok, emqx_guard_nif, Bin} = compile:forms(Forms, []),
    _ = code:purge(emqx_guard_nif),
    {module, emqx_guard_nif} = code:load_binary(emqx_guard_nif, "stand-in", Bin),
    try
        F()
    after
        _ = code:purge(emqx_guard_nif),
        true = code:delete(emqx_guard_nif),
        _ = code:purge(emqx_guard_nif),
        {module, emqx_guard_nif} = code:ensure_loaded(emqx_guard_nif),
        {ok, _} = emqx_guard_nif:list_backups(<<"/">>),
        persistent_term:erase({?MODULE, on_verify})
    end.

poll(Fun) ->
    poll(Fun, 500).

poll(_Fun, 0) ->
    {error, timeout};
poll(Fun, N) ->
    case Fun() of
        true ->
            ok;
        false ->
            timer:sleep(10),
            poll(Fun, N - 1)
    end.

%% A valid export in EMQX's layout, as if made on 2025-01-Day, named as EMQX names it.
old_export(Dir, Day) ->
    Base = lists:flatten(io_lib:format("emqx-export-2025-01-~2..0b-10-00-00.000", [Day])),
    write_export(Dir, Base),
    Base ++ ".tar.gz".

write_export(Dir, Base) ->
    Tar = filename:join(Dir, Base ++ ".tar.gz"),
    {ok, Fd} = erl_tar:open(Tar, [write, compressed]),
    ok = erl_tar:add(Fd, <<"edition = ce\nversion = \"5.3.2\"\n">>, Base ++ "/META.hocon", []),
    ok = erl_tar:add(Fd, <<>>, Base ++ "/cluster.hocon", []),
    ok = erl_tar:add(Fd, term_to_binary({emqx_admin, Base}), Base ++ "/mnesia/emqx_admin", []),
    ok = erl_tar:close(Fd).

%% Two earlier backups and an upload, the files a failed run must leave alone.
earlier_backups(Dir) ->
    Old = [old_export(Dir, Day) || Day <- [1, 2]],
    ok = file:write_file(filename:join(Dir, "my-upload.tar.gz"), <<"upload">>),
    lists:sort(["my-upload.tar.gz" | Old]).

ls(Dir) ->
    {ok, Names} = file:list_dir(Dir),
    lists:sort(Names).

%% The plugins companion's name of the export Name (`emqx_guard_companion').
companion(Name) ->
    binary_to_list(emqx_guard_companion:name(iolist_to_binary(Name))).

hex(Bin) ->
    list_to_binary([io_lib:format("~2.16.0b", [B]) || <<B>> <= Bin]).
