%% Common Test suite for the scheduler (emqx_guard_scheduler) with an injected
%% clock and timer: fire instants, early wakes, chained long waits, one run at
%% a time, catch-up after a restart, alarms. One end-to-end case lets a real
%% timer fire and sees a backup file appear.
-module(emqx_guard_scheduler_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    fires_at_the_scheduled_instants/1,
    fires_in_the_configured_zone/1,
    early_wake_rearms_for_the_same_instant/1,
    instant_never_runs_twice/1,
    long_wait_is_chained/1,
    fire_during_run_is_skipped/1,
    failure_raises_alarm_success_clears_it/1,
    catchup_after_restart_once/1,
    catchup_only_within_window/1,
    catchup_follows_settings_changes/1,
    no_catchup_on_fresh_install/1,
    state_survives_restart/1,
    settings_change_rearms_at_once/1,
    stop_leaves_no_worker/1,
    real_timer_end_to_end/1
]).

-import(emqx_guard_ct_helper, [
    fake_opts/1, start_app/1, stop_app/0, set_now/1, utc/1, next_timer/1, no_timer/1, deliver/1, wait_idle/0,
    wait_until/1, backups/0
]).

-define(ALARM, emqx_guard_backup_failed).
%% Wednesday 2026-11-25 10:00:00 UTC
-define(T0, {{2026, 11, 25}, {10, 0, 0}}).

all() ->
    [{group, fake_clock}, real_timer_end_to_end].

groups() ->
    [
        {fake_clock, [], [
            fires_at_the_scheduled_instants,
            fires_in_the_configured_zone,
            early_wake_rearms_for_the_same_instant,
            instant_never_runs_twice,
            long_wait_is_chained,
            fire_during_run_is_skipped,
            failure_raises_alarm_success_clears_it,
            catchup_after_restart_once,
            catchup_only_within_window,
            catchup_follows_settings_changes,
            no_catchup_on_fresh_install,
            state_survives_restart,
            settings_change_rearms_at_once,
            stop_leaves_no_worker
        ]}
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

%%--------------------------------------------------------------------

%% Stores settings before the app starts (as a previous run of the plugin would have).
preset(Changes) ->
    ok = emqx_guard_settings:save(maps:merge(emqx_guard_settings:defaults(), Changes)).

daily_noon_utc() ->
    preset(#{backup_cron => <<"0 12 * * *">>, backup_timezone => <<"UTC">>}).

fires_at_the_scheduled_instants(_Config) ->
    daily_noon_utc(),
    set_now(?T0),
    start_app(fake_opts(#{})),
    {Delay, _, _} = Timer = next_timer(wake),
    ?assertEqual(2 * 3600 * 1000, Delay),
    ?assertEqual(utc({{2026, 11, 25}, {12, 0, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())),
    set_now({{2026, 11, 25}, {12, 0, 0}}),
    deliver(Timer),
    wait_idle(),
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    #{last_run := Run, counts := Counts, next_fire := Next} = emqx_guard_scheduler:status(),
    ?assertMatch(#{result := ok, trigger := scheduled, instant := _}, Run),
    ?assertEqual(utc({{2026, 11, 25}, {12, 0, 0}}), maps:get(instant, Run)),
    ?assertEqual(#{ok => 1, failed => 0, skipped => 0}, Counts),
    ?assertEqual(utc({{2026, 11, 26}, {12, 0, 0}}), Next),
    {Delay2, _, _} = next_timer(wake),
    ?assertEqual(24 * 3600 * 1000, Delay2),
    [_] = backups().

fires_in_the_configured_zone(_Config) ->
    %% 12:00 in Berlin is 11:00 UTC in winter
    preset(#{backup_cron => <<"0 12 * * *">>, backup_timezone => <<"Europe/Berlin">>}),
    set_now(?T0),
    start_app(fake_opts(#{})),
    {Delay, _, _} = next_timer(wake),
    ?assertEqual(3600 * 1000, Delay),
    ?assertEqual(utc({{2026, 11, 25}, {11, 0, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())).

early_wake_rearms_for_the_same_instant(_Config) ->
    daily_noon_utc(),
    set_now(?T0),
    start_app(fake_opts(#{})),
    Timer = next_timer(wake),
    %% the timer comes back while the wall clock says 11:00 (clock was set back)
    set_now({{2026, 11, 25}, {11, 0, 0}}),
    deliver(Timer),
    ?assertEqual(0, emqx_mgmt_data_backup:export_count()),
    {Delay, _, _} = Timer2 = next_timer(wake),
    ?assertEqual(3600 * 1000, Delay),
    ?assertEqual(utc({{2026, 11, 25}, {12, 0, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())),
    %% the replaced timer's message is ignored
    deliver(Timer),
    ?assertEqual(0, emqx_mgmt_data_backup:export_count()),
    no_timer(wake),
    set_now({{2026, 11, 25}, {12, 0, 0}}),
    deliver(Timer2),
    wait_idle(),
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()).

instant_never_runs_twice(_Config) ->
    daily_noon_utc(),
    set_now(?T0),
    start_app(fake_opts(#{})),
    Timer = next_timer(wake),
    set_now({{2026, 11, 25}, {12, 0, 0}}),
    deliver(Timer),
    wait_idle(),
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    _ = next_timer(wake),
    %% the clock goes back before noon: rescheduling must not aim at today's noon again
    set_now({{2026, 11, 25}, {11, 59, 0}}),
    ok = emqx_guard_scheduler:settings_changed(),
    {Delay, _, _} = Timer2 = next_timer(wake),
    ?assertEqual(utc({{2026, 11, 26}, {12, 0, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())),
    ?assertEqual(utc({{2026, 11, 26}, {12, 0, 0}}) - utc({{2026, 11, 25}, {11, 59, 0}}), Delay),
    %% an old wake for today's noon (stale message) does nothing
    deliver(Timer),
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    %% and neither does a restart: the last fired instant is persisted
    stop_app(),
    start_app(fake_opts(#{})),
    Timer3 = next_timer(wake),
    ?assertEqual(utc({{2026, 11, 26}, {12, 0, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())),
    no_timer(catchup),
    %% a wake just after the fired instant only re-arms
    set_now({{2026, 11, 25}, {12, 0, 30}}),
    deliver(Timer3),
    _ = next_timer(wake),
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    _ = Timer2.

long_wait_is_chained(_Config) ->
    %% 29 February: from late 2026 the next one is 2028-02-29
    preset(#{backup_cron => <<"0 0 29 2 *">>, backup_timezone => <<"UTC">>}),
    set_now(?T0),
    start_app(fake_opts(#{})),
    Target = utc({{2028, 2, 29}, {0, 0, 0}}),
    Max = 16#FFFFFFFF,
    {Delay1, _, _} = T1 = next_timer(wake),
    ?assertEqual(Max, Delay1),
    %% each wake re-reads the clock and waits again, for the same target
    set_now(utc(?T0) + Max),
    deliver(T1),
    {Delay2, _, _} = T2 = next_timer(wake),
    ?assertEqual(min(Max, Target - (utc(?T0) + Max)), Delay2),
    ?assertEqual(Target, maps:get(next_fire, emqx_guard_scheduler:status())),
    ?assertEqual(0, emqx_mgmt_data_backup:export_count()),
    %% jump to the target: exactly one run
    set_now(Target),
    deliver(T2),
    wait_idle(),
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    ?assertEqual(utc({{2032, 2, 29}, {0, 0, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())).

fire_during_run_is_skipped(_Config) ->
    preset(#{backup_cron => <<"* * * * *">>, backup_timezone => <<"UTC">>}),
    set_now(?T0),
    ok = emqx_mgmt_data_backup:set_mode({hang, 3000}),
    start_app(fake_opts(#{})),
    T1 = next_timer(wake),
    set_now({{2026, 11, 25}, {10, 1, 0}}),
    deliver(T1),
    ?assertMatch(#{running := #{trigger := scheduled}}, emqx_guard_scheduler:status()),
    T2 = next_timer(wake),
    set_now({{2026, 11, 25}, {10, 2, 0}}),
    deliver(T2),
    #{counts := Counts, running := Running} = emqx_guard_scheduler:status(),
    ?assertNotEqual(undefined, Running),
    ?assertEqual(#{ok => 0, failed => 0, skipped => 1}, Counts),
    %% a skip like any other: shown, never notified as a failure
    ?assertMatch(#{last_skip := #{result := skipped, reason := {previous_run_still_running, _}}},
        emqx_guard_scheduler:status()),
    Status = emqx_guard_ct_helper:ctl(["backup_status"]),
    ?assert(lists:member("last skipped fire here: 2026-11-25 10:02:00 +00:00; the previous backup was still running",
        Status), Status),
    ?assertNot(lists:any(fun(L) -> lists:prefix("cluster:", L) end, Status), Status),
    %% a manual run is refused too
    {refused, Why} = emqx_guard_scheduler:run_now(),
    ?assertMatch({match, _}, re:run(emqx_guard_outcome:format_error(Why), "already running")),
    wait_idle(),
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    ?assertEqual(#{ok => 1, failed => 0, skipped => 1}, maps:get(counts, emqx_guard_scheduler:status())).

failure_raises_alarm_success_clears_it(_Config) ->
    daily_noon_utc(),
    set_now(?T0),
    ok = emqx_mgmt_data_backup:set_mode(disk_full),
    start_app(fake_opts(#{})),
    T1 = next_timer(wake),
    set_now({{2026, 11, 25}, {12, 0, 0}}),
    deliver(T1),
    wait_idle(),
    [#{name := ?ALARM, message := Message, details := Details}] = emqx_alarm:active_alarms(),
    ?assertMatch({match, _}, re:run(Message, "backup failed: export failed: .*no space left on device")),
    ?assertMatch(#{error := _, trigger := scheduled}, Details),
    ?assertMatch({error, <<"the last backup failed: ", _/binary>>}, emqx_guard_app:on_health_check(#{})),
    ?assertEqual([], backups()),
    %% the alarm is raised again after a restart while the last run is still the failed one
    stop_app(),
    ok = emqx_alarm:reset(),
    start_app(fake_opts(#{})),
    ?assertMatch([#{name := ?ALARM}], emqx_alarm:active_alarms()),
    T2 = next_timer(wake),
    ok = emqx_mgmt_data_backup:set_mode(ok),
    set_now({{2026, 11, 26}, {12, 0, 0}}),
    deliver(T2),
    wait_idle(),
    ?assertEqual([], emqx_alarm:active_alarms()),
    ?assertMatch([#{name := ?ALARM} | _], emqx_alarm:history()),
    ?assertEqual(ok, emqx_guard_app:on_health_check(#{})),
    ?assertEqual(#{ok => 1, failed => 1, skipped => 0}, maps:get(counts, emqx_guard_scheduler:status())).

catchup_after_restart_once(_Config) ->
    daily_noon_utc(),
    %% the node ran the fire of 2026-11-20 12:00, then was down for five days
    ok = emqx_guard_run_state:save(
        (emqx_guard_run_state:fresh())#{last_fired => utc({{2026, 11, 20}, {12, 0, 0}})}
    ),
    set_now({{2026, 11, 25}, {13, 0, 0}}),
    start_app(fake_opts(#{catchup_delay_ms => 60000})),
    {CatchupDelay, _, _} = C = next_timer(catchup),
    ?assertEqual(60000, CatchupDelay),
    ?assertEqual(
        #{instant => utc({{2026, 11, 25}, {12, 0, 0}})}, maps:get(catchup, emqx_guard_scheduler:status())
    ),
    Wake = next_timer(wake),
    ?assertEqual(utc({{2026, 11, 26}, {12, 0, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())),
    set_now({{2026, 11, 25}, {13, 1, 0}}),
    deliver(C),
    wait_idle(),
    %% one catch-up run for the latest missed instant, never a backlog of five
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    #{last_run := Run, last_fired := LastFired} = emqx_guard_scheduler:status(),
    ?assertMatch(#{trigger := catchup, result := ok}, Run),
    ?assertEqual(utc({{2026, 11, 25}, {12, 0, 0}}), LastFired),
    %% a restart right after does not catch up again
    stop_app(),
    start_app(fake_opts(#{catchup_delay_ms => 60000})),
    no_timer(catchup),
    ?assertEqual(undefined, maps:get(catchup, emqx_guard_scheduler:status())),
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    _ = Wake.

catchup_follows_settings_changes(_Config) ->
    daily_noon_utc(),
    ok = emqx_guard_run_state:save(
        (emqx_guard_run_state:fresh())#{last_fired => utc({{2026, 11, 24}, {12, 0, 0}})}
    ),
    set_now({{2026, 11, 25}, {13, 0, 0}}),
    start_app(fake_opts(#{catchup_delay_ms => 60000})),
    Planned = next_timer(catchup),
    ?assertEqual(#{instant => utc({{2026, 11, 25}, {12, 0, 0}})}, maps:get(catchup, emqx_guard_scheduler:status())),
    %% turning catch-up off cancels the planned run: its timer message is now stale
    ["backup_catchup = \"0\"" ++ _] = emqx_guard_ct_helper:ctl(["backup_catchup", "0"]),
    ?assertEqual(undefined, maps:get(catchup, emqx_guard_scheduler:status())),
    deliver(Planned),
    wait_idle(),
    ?assertEqual(0, emqx_mgmt_data_backup:export_count()),
    %% catch-up is decided at start: turning it back on later plans nothing
    ["backup_catchup = \"24h\""] = emqx_guard_ct_helper:ctl(["backup_catchup", "24h"]),
    ?assertEqual(undefined, maps:get(catchup, emqx_guard_scheduler:status())),
    stop_app(),
    %% a new schedule while a catch-up is planned decides again which instant was missed
    start_app(fake_opts(#{catchup_delay_ms => 60000})),
    Old = next_timer(catchup),
    ?assertEqual(#{instant => utc({{2026, 11, 25}, {12, 0, 0}})}, maps:get(catchup, emqx_guard_scheduler:status())),
    ["backup_cron = \"0 9 * * *\"" | _] = emqx_guard_ct_helper:ctl(["backup_cron", "0 9 * * *"]),
    ?assertEqual(#{instant => utc({{2026, 11, 25}, {9, 0, 0}})}, maps:get(catchup, emqx_guard_scheduler:status())),
    New = next_timer(catchup),
    deliver(Old),
    deliver(New),
    wait_idle(),
    %% one run, for the instant of the new schedule
    ?assertEqual(1, emqx_mgmt_data_backup:export_count()),
    ?assertMatch(#{trigger := catchup}, maps:get(last_run, emqx_guard_scheduler:status())),
    ?assertEqual(utc({{2026, 11, 25}, {9, 0, 0}}), maps:get(last_fired, emqx_guard_scheduler:status())).

catchup_only_within_window(_Config) ->
    %% missed 12:00, now 13:00: outside a 30 minute window
    preset(#{backup_cron => <<"0 12 * * *">>, backup_timezone => <<"UTC">>, backup_catchup => 1800}),
    ok = emqx_guard_run_state:save(
        (emqx_guard_run_state:fresh())#{last_fired => utc({{2026, 11, 24}, {12, 0, 0}})}
    ),
    set_now({{2026, 11, 25}, {13, 0, 0}}),
    start_app(fake_opts(#{})),
    no_timer(catchup),
    stop_app(),
    %% inside a 2 hour window
    ok = emqx_guard_settings:save((emqx_guard_settings:load())#{backup_catchup => 7200}),
    start_app(fake_opts(#{})),
    _ = next_timer(catchup),
    stop_app(),
    %% 0 turns catch-up off
    ok = emqx_guard_settings:save((emqx_guard_settings:load())#{backup_catchup => 0}),
    start_app(fake_opts(#{})),
    no_timer(catchup),
    stop_app(),
    %% a manual backup after the missed instant counts as the backup: nothing to catch up
    ok = emqx_guard_settings:save((emqx_guard_settings:load())#{backup_catchup => 86400}),
    ok = emqx_guard_run_state:save(
        (emqx_guard_run_state:fresh())#{
            last_fired => utc({{2026, 11, 24}, {12, 0, 0}}),
            last_run => #{started_at => utc({{2026, 11, 25}, {12, 30, 0}}), duration_ms => 10,
                result => ok, trigger => manual}
        }
    ),
    start_app(fake_opts(#{})),
    no_timer(catchup),
    ?assertEqual(0, emqx_mgmt_data_backup:export_count()).

no_catchup_on_fresh_install(_Config) ->
    daily_noon_utc(),
    set_now({{2026, 11, 25}, {13, 0, 0}}),
    start_app(fake_opts(#{})),
    _ = next_timer(wake),
    no_timer(catchup).

state_survives_restart(_Config) ->
    daily_noon_utc(),
    set_now(?T0),
    start_app(fake_opts(#{})),
    {ok, Run} = emqx_guard_scheduler:run_now(),
    ok = emqx_mgmt_data_backup:set_mode({error, boom}),
    {failed, _} = emqx_guard_scheduler:run_now(),
    stop_app(),
    start_app(fake_opts(#{})),
    #{counts := Counts, last_run := Last} = emqx_guard_scheduler:status(),
    ?assertEqual(#{ok => 1, failed => 1, skipped => 0}, Counts),
    ?assertMatch(#{result := failed, trigger := manual, error := <<"export failed: boom">>}, Last),
    ?assertMatch(#{result := ok, path := _, size := _, sha256 := _}, Run).

settings_change_rearms_at_once(_Config) ->
    daily_noon_utc(),
    set_now(?T0),
    start_app(fake_opts(#{})),
    _ = next_timer(wake),
    {ok, _} = emqx_guard_settings_sync:update_local(#{backup_cron => <<"30 10 * * *">>}),
    {Delay, _, _} = next_timer(wake),
    ?assertEqual(30 * 60 * 1000, Delay),
    %% a rejected change re-arms nothing and changes nothing
    {error, _} = emqx_guard_settings_sync:update_local(#{backup_cron => <<"61 10 * * *">>}),
    no_timer(wake),
    ?assertEqual(<<"30 10 * * *">>, maps:get(backup_cron, emqx_guard_settings:load())).

stop_leaves_no_worker(_Config) ->
    daily_noon_utc(),
    set_now(?T0),
    ok = emqx_mgmt_data_backup:set_mode({hang, 60000}),
    start_app(fake_opts(#{})),
    Self = self(),
    _ = spawn(fun() -> Self ! {run_now, try emqx_guard_scheduler:run_now() catch C:R -> {'EXIT', {C, R}} end} end),
    wait_until(fun() -> maps:get(running, emqx_guard_scheduler:status()) =/= undefined end),
    wait_until(fun() -> emqx_mgmt_data_backup:last_export_pid() =/= undefined end),
    ExportPid = emqx_mgmt_data_backup:last_export_pid(),
    stop_app(),
    ?assertEqual(undefined, whereis(emqx_guard_scheduler)),
    wait_until(fun() -> not is_process_alive(ExportPid) end),
    receive
        %% answered: the run is recorded as failed, interrupted by the stop
        {run_now, Result} -> ?assertMatch({failed, #{reason := {plugin_stopped, _}}}, Result)
    after 5000 -> error(run_now_caller_not_released)
    end.

%% The one test with a real timer: `* * * * *' fires within a minute.
real_timer_end_to_end(_Config) ->
    preset(#{backup_cron => <<"* * * * *">>, backup_timezone => <<"UTC">>}),
    start_app(real),
    ?assertEqual([], backups()),
    #{next_fire := Next} = emqx_guard_scheduler:status(),
    ct:log("waiting for the fire at ~ts", [emqx_guard_render:instant(Next, 0)]),
    wait_until_fired(70),
    wait_idle(),
    [Name] = backups(),
    {ok, Info} = file:read_file_info(filename:join(emqx_guard_emqx:backup_dir(), Name)),
    ?assertEqual(8#600, element(8, Info) band 8#777),
    #{last_run := Run} = emqx_guard_scheduler:status(),
    ?assertMatch(#{result := ok, trigger := scheduled}, Run),
    ?assertEqual(Next, maps:get(instant, Run)).

wait_until_fired(0) ->
    error(no_backup_after_70_seconds);
wait_until_fired(N) ->
    case emqx_mgmt_data_backup:export_count() of
        0 ->
            timer:sleep(1000),
            wait_until_fired(N - 1);
        _ ->
            ok
    end.
