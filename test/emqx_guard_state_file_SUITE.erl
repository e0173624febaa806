%% Common Test suite: a damaged run state file (`<data_dir>/emqx_guard/state.eterm') never stops
%% the plugin. The app starts, `guard backup_status' prints its usual lines (the damaged record
%% dropped) and a backup still runs.
-module(emqx_guard_state_file_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([damaged_state_keeps_the_app_up/1]).

-import(emqx_guard_ct_helper, [ctl/1]).

all() ->
    [damaged_state_keeps_the_app_up].

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
