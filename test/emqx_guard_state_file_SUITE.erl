%% Common Test suite: the plugin's data files (`<data_dir>/emqx_guard/'). A damaged run state file
%% (`state.eterm') or off-site state file (`offsite.eterm') never stops the plugin: the app starts,
%% `guard backup_status' prints its usual lines (the damaged record dropped) and a backup still
%% runs. Every data file in every older format is read (as the releases before wrote them), and
%% every data file in a newer format (a downgrade) gives one line naming it and both versions, a
%% copy kept aside, and the defaults for that file (`emqx_guard_store').
-module(emqx_guard_state_file_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    damaged_state_keeps_the_app_up/1,
    damaged_offsite_state_starts_a_new_record/1,
    older_formats_are_read/1,
    newer_formats_give_defaults_and_are_kept/1
]).

-import(emqx_guard_ct_helper, [ctl/1]).

all() ->
    [
        damaged_state_keeps_the_app_up,
        damaged_offsite_state_starts_a_new_record,
        older_formats_are_read,
        newer_formats_give_defaults_and_are_kept
    ].

init_per_suite(Config) ->
    emqx_guard_ct_helper:init_suite(Config).

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

init_per_testcase(TC, Config) ->
    emqx_guard_ct_helper:init_case(TC, Config).

end_per_testcase(_TC, _Config) ->
    emqx_guard_ct_helper:end_case().

damaged_state_keeps_the_app_up(Config) ->
    DataDir = ?config(data_dir, Config),
    StateFile = filename:join([DataDir, "emqx_guard", "state.eterm"]),
    ok = filelib:ensure_dir(StateFile),
    Damaged = [
        %% restore_alarm raised badarg on a non-binary error
        #{last_run => #{started_at => 1, result => failed, error => oops}},
        %% the NIF raised badarg on an instant out of its range
        #{last_fired => 99999999999999999999},
        %% backup_status printed "Error: internal error" without error / duration_ms
        #{last_run => #{started_at => 1764417600000, result => failed, trigger => scheduled}},
        #{last_run => #{started_at => 99999999999999999999, duration_ms => 5, result => ok, trigger => manual}}
    ],
    lists:foreach(
        fun(Stored) ->
            ok = file:write_file(StateFile, io_lib:format("~tp.~n", [{emqx_guard_state, 1, Stored}])),
            emqx_guard_ct_helper:set_now({{2026, 11, 25}, {10, 0, 0}}),
            ok = emqx_guard_ct_helper:start_app(emqx_guard_ct_helper:fake_opts(#{})),
            ?assertNotEqual(undefined, whereis(emqx_guard_scheduler)),
            Status = ctl(["backup_status"]),
            ?assert(lists:member("last run: none yet", Status), {Stored, Status}),
            ?assert(lists:member("runs: 0 ok, 0 failed, 0 skipped", Status), {Stored, Status}),
            ?assertEqual([], [L || L <- Status, string:prefix(L, "Error") =/= nomatch], Stored),
            ?assertEqual(ok, emqx_guard_app:on_health_check(#{})),
            %% and a backup still runs
            ?assertMatch(["Backup done" ++ _ | _], ctl(["backup_now"])),
            emqx_guard_ct_helper:stop_app()
        end,
        Damaged
    ).

%% A damaged off-site state: the damaged fields (or the whole file) are dropped with a warning, so
%% nothing is resumed from them and this node's record of its uploads starts again (remote
%% retention then waits for a history of its own); the queue runs and `backup_status' shows it.
damaged_offsite_state_starts_a_new_record(Config) ->
    DataDir = ?config(data_dir, Config),
    File = filename:join([DataDir, "emqx_guard", "offsite.eterm"]),
    ok = filelib:ensure_dir(File),
    %% a destination nobody listens on: nothing may be resumed, or its job would show
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    ok = emqx_guard_settings:save(maps:merge(emqx_guard_settings:defaults(), #{
        backup_remote_type => <<"s3">>, backup_remote_bucket => <<"b">>, backup_remote_access_key => <<"a">>,
        backup_remote_secret_key => <<"s">>, backup_remote_path_style => true,
        backup_remote_endpoint => iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)])
    })),
    Name = <<"emqx-export-2026-11-25-10-00-00.000.tar.gz">>,
    Damaged = [
        <<"{emqx_guard_offsite, 1, #{pending => [">>,
        <<"not_a_state.\n">>,
        term({emqx_guard_offsite, 99, #{}}),
        term({emqx_guard_offsite, 1, #{pending => [#{file => 1, path => Name}], own => [oops], failing => yes,
                                        since => -5, confirmed_for => 7, retention => #{paused => x},
                                        last_upload => #{at => 1, file => Name}, last_error => #{at => 1},
                                        last_job => #{at => 1, result => maybe_not, duration_ms => 1}}})
    ],
    lists:foreach(
        fun(Content) ->
            ok = file:write_file(File, Content),
            emqx_guard_ct_helper:set_now({{2026, 11, 25}, {10, 0, 0}}),
            ok = emqx_guard_ct_helper:start_app(emqx_guard_ct_helper:fake_opts(#{})),
            %% (it looks at the bucket first, as a node without backups does: that fails at once)
            emqx_guard_ct_helper:wait_until(fun() -> maps:get(running, emqx_guard_offsite_queue:status()) =:= undefined end),
            #{running := undefined, waiting := [], state := State} = emqx_guard_offsite_queue:status(),
            ?assertMatch(#{pending := [], own := [], confirmed_for := undefined, failing := false, last_upload := undefined,
                           last_error := undefined, last_job := undefined, retention := undefined}, State, Content),
            ?assert(is_integer(maps:get(since, State)) andalso maps:get(since, State) > 0),
            Status = ctl(["backup_status"]),
            ?assert(lists:member("  uploads: none waiting", Status), {Content, Status}),
            ?assertEqual([], [S || S <- Status, string:prefix(S, "Error") =/= nomatch], Content),
            ?assertEqual([], emqx_alarm:active_alarms()),
            emqx_guard_ct_helper:stop_app()
        end,
        Damaged
    ).

%% Every data file as the releases before this one wrote it: the files of 0.1.0 (settings with its
%% keys, the run state, the exported instants, the settings version, the verification records,
%% the dead-man state as a bare map), the off-site state and the leftovers note in their only
%% format, then cluster.eterm's formats 2 and 1, which also held the exported instants. Each is
%% read by its owner at start.
older_formats_are_read(Config) ->
    DataDir = ?config(data_dir, Config),
    Backup = <<"emqx-export-2026-11-24-10-00-00.000.tar.gz">>,
    ok = filelib:ensure_dir(filename:join([DataDir, "backup", "x"])),
    ok = file:write_file(filename:join([DataDir, "backup", Backup]), <<"a backup">>),
    Settings = emqx_guard_proto:settings_for(1, (emqx_guard_settings:defaults())#{backup_keep => 7}),
    LastRun = #{
        duration_ms => 3015, file => Backup, instant => 1795600860000, node => node(), path => <<"/x/", Backup/binary>>,
        pruned => [], result => ok, sha256 => <<"51e9">>, size => 1502, started_at => 1795600860000,
        trigger => scheduled, version => <<"5.3.2">>, warnings => []
    },
    Record = #{
        bytes => 2197, dev => 65024, edition => <<"ce">>, entries => 8, inode => 5563051, mtime_ns => 1796406094000000000,
        name => Backup, result => ok, sha256 => <<"51e9">>, size => 1502, verified_at => 1796406094019, version => <<"5.3.2">>
    },
    Release010 = #{
        "settings.eterm" => {emqx_guard_settings, 1, Settings},
        "state.eterm" => {emqx_guard_state, 1, #{counts => #{failed => 0, ok => 1, skipped => 1}, last_fired => 1795600920000, last_run => LastRun}},
        "exported.eterm" => {emqx_guard_exported, 1, [1795600860000]},
        "cluster.eterm" => {emqx_guard_cluster, 3, #{version => {1796406043457, 'core@h'}}},
        "verified.eterm" => {emqx_guard_verifications, 1, [Record]},
        "notify_state" => #{last_success => 1795600860000, warned_for => undefined},
        "offsite.eterm" => {emqx_guard_offsite, 1, #{since => 1795600000000, own => [Backup], confirmed_for => <<"e/b/p">>}},
        "leftovers.eterm" => {emqx_guard_export_files, 1, [#{name => Backup, what => partial, at => 1795600860000}]}
    },
    with_files(DataDir, Release010, fun() ->
        ?assertEqual(7, maps:get(backup_keep, emqx_guard_settings:get())),
        %% a key 0.1.0 did not have: its default
        ?assertEqual(true, maps:get(notify_on_offsite_ok, emqx_guard_settings:get())),
        #{counts := #{ok := 1, skipped := 1}, last_run := #{file := Backup, result := ok}} = emqx_guard_scheduler:status(),
        ?assert(emqx_guard_election:was_exported(1795600860000)),
        ?assertEqual({1796406043457, 'core@h'}, emqx_guard_settings_sync:version()),
        ?assertEqual([Record], emqx_guard_verifications:records()),
        ?assertEqual(1795600860000, maps:get(last_success, emqx_guard_notify:status())),
        ?assertMatch(#{state := #{since := 1795600000000, own := [Backup], confirmed_for := <<"e/b/p">>}}, emqx_guard_offsite_queue:status()),
        ?assert(lists:member("left by interrupted exports:", ctl(["backup_status"])))
    end),
    %% before exported.eterm, cluster.eterm held the exported instants (format 2: a set, 1: the last)
    Older = #{
        "cluster.eterm" => {emqx_guard_cluster, 2, #{version => {1796406043457, 'core@h'}, exported => [1795600860000, 1795600800000]}}
    },
    with_files(DataDir, Older, fun() ->
        ?assertEqual({1796406043457, 'core@h'}, emqx_guard_settings_sync:version()),
        ?assert(emqx_guard_election:was_exported(1795600800000))
    end),
    Oldest = #{"cluster.eterm" => {emqx_guard_cluster, 1, #{version => {1796406043457, 'core@h'}, last_exported => 1795600860000}}},
    with_files(DataDir, Oldest, fun() ->
        ?assertEqual({1796406043457, 'core@h'}, emqx_guard_settings_sync:version()),
        ?assert(emqx_guard_election:was_exported(1795600860000))
    end).

%% Every data file in the format after the one this plugin writes, as a newer plugin leaves it
%% before a downgrade: one warning per file naming it and both versions, the defaults for it,
%% and the newer file kept aside byte for byte (`<file>.newer-v<N>') also once the plugin has
%% written its own file in its place.
newer_formats_give_defaults_and_are_kept(Config) ->
    DataDir = ?config(data_dir, Config),
    Backup = <<"emqx-export-2026-11-24-10-00-00.000.tar.gz">>,
    ok = filelib:ensure_dir(filename:join([DataDir, "backup", "x"])),
    ok = file:write_file(filename:join([DataDir, "backup", Backup]), <<"a backup">>),
    Newer = #{
        "settings.eterm" => {{emqx_guard_settings, 1}, #{backup_keep => 9}},
        "state.eterm" => {{emqx_guard_state, 1}, #{counts => #{failed => 0, ok => 4, skipped => 0}}},
        "exported.eterm" => {{emqx_guard_exported, 1}, [1795600860000]},
        "cluster.eterm" => {{emqx_guard_cluster, 3}, #{version => {1796406043457, 'core@h'}}},
        "verified.eterm" => {{emqx_guard_verifications, 1}, [#{name => Backup}]},
        "notify_state" => {{emqx_guard_notify_state, 2}, #{last_success => 1795600860000, warned_for => undefined}},
        "offsite.eterm" => {{emqx_guard_offsite, 1}, #{since => 1795600000000, own => [Backup]}},
        "leftovers.eterm" => {{emqx_guard_export_files, 1}, [#{name => Backup, what => partial, at => 1795600860000}]}
    },
    Files = maps:map(fun(_, {{Tag, Vsn}, Body}) -> {Tag, Vsn + 1, Body} end, Newer),
    {ok, Logs} = emqx_guard_test_logs:start(),
    Written = with_files(DataDir, Files, fun() ->
        ?assertEqual(emqx_guard_settings:defaults(), emqx_guard_settings:get()),
        #{counts := #{ok := 0}, last_run := undefined} = emqx_guard_scheduler:status(),
        ?assertNot(emqx_guard_election:was_exported(1795600860000)),
        ?assertEqual({0, none}, emqx_guard_settings_sync:version()),
        ?assertEqual([], emqx_guard_verifications:records()),
        ?assertNotEqual(1795600860000, maps:get(last_success, emqx_guard_notify:status())),
        ?assertMatch(#{state := #{own := []}}, emqx_guard_offsite_queue:status()),
        ?assertNot(lists:member("left by interrupted exports:", ctl(["backup_status"]))),
        %% the plugin goes on and writes its own files over them
        ?assertMatch(["Backup done" ++ _ | _], ctl(["backup_now"])),
        {ok, _} = emqx_guard_settings_sync:update_local(#{backup_keep => 6})
    end),
    Lines = [R || R = #{msg := emqx_guard_state_file_newer} <- emqx_guard_test_logs:reports(emqx_guard_test_logs:stop(Logs))],
    Said = lists:sort([{filename:basename(F), V, Reads} || #{file := F, version := V, this_plugin_reads := Reads} <- Lines]),
    ?assertEqual(lists:sort([{list_to_binary(N), V + 1, V} || {N, {{_, V}, _}} <- maps:to_list(Newer)]), Said),
    maps:foreach(
        fun(Name, {{_, Vsn}, _}) ->
            Kept = filename:join([DataDir, "emqx_guard", Name ++ ".newer-v" ++ integer_to_list(Vsn + 1)]),
            ?assertEqual({ok, maps:get(Name, Written)}, file:read_file(Kept), Name)
        end,
        Newer
    ),
    %% what this plugin wrote since is its own format
    ?assertMatch({ok, {emqx_guard_state, 1, _}}, emqx_guard_store:read(filename:join([DataDir, "emqx_guard", "state.eterm"]))),
    ?assertMatch({ok, {emqx_guard_settings, 1, #{backup_keep := 6}}}, emqx_guard_store:read(emqx_guard_settings:settings_file())).

%% Writes Files (name => term, as the store writes them) into the data dir, runs Check with the
%% plugin started on them, stops it; returns the bytes written per file.
with_files(DataDir, Files, Check) ->
    Dir = filename:join(DataDir, "emqx_guard"),
    _ = file:del_dir_r(Dir),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Written = maps:map(
        fun(Name, Term) ->
            Bytes = unicode:characters_to_binary(io_lib:format("%% written by another release~n~tp.~n", [Term])),
            ok = file:write_file(filename:join(Dir, Name), Bytes),
            Bytes
        end,
        Files
    ),
    emqx_guard_ct_helper:set_now({{2026, 11, 25}, {10, 0, 0}}),
    ok = emqx_guard_ct_helper:start_app(emqx_guard_ct_helper:fake_opts(#{})),
    try
        Check()
    after
        emqx_guard_ct_helper:stop_app()
    end,
    Written.

term(T) ->
    unicode:characters_to_binary(io_lib:format("~tp.~n", [T])).
