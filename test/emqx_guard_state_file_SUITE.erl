%% Common Test suite: a damaged run state file (`<data_dir>/emqx_guard/state.eterm') or off-site
%% state file (`offsite.eterm') never stops the plugin. The app starts, `guard backup_status'
%% prints its usual lines (the damaged record dropped) and a backup still runs.
-module(emqx_guard_state_file_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([damaged_state_keeps_the_app_up/1, damaged_offsite_state_starts_a_new_record/1]).

-import(emqx_guard_ct_helper, [ctl/1]).

all() ->
    [damaged_state_keeps_the_app_up, damaged_offsite_state_starts_a_new_record].

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

term(T) ->
    unicode:characters_to_binary(io_lib:format("~tp.~n", [T])).
