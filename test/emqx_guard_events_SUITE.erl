%% Common Test suite for the plugin's `$SYS' events (issue 24): a subscriber to
%% `$SYS/brokers/+/guard/#' through the EMQX broker stand-ins (`emqx_broker', `emqx_message', as
%% EMQX routes and builds messages) gets each backup outcome once, as JSON with the documented
%% keys, QoS 0, not retained, flagged `sys', from `emqx_sys', on
%% `$SYS/brokers/<node>/guard/<event>'; none for a skipped fire, none while `sys_events' is off;
%% the off-site results (a real S3 server, s3s-fs), the dead-man warning and a restore too; and no
%% secret of the settings in any payload.
-module(emqx_guard_events_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    each_outcome_published_once/1,
    skipped_fire_publishes_nothing/1,
    turned_off_publishes_nothing/1,
    offsite_results_published/1,
    dead_man_and_restore_published/1,
    no_secret_in_any_payload/1
]).

-import(emqx_guard_ct_helper, [fake_opts/1, start_app/1, set_now/1, ctl/1, result/1, wait_until/1, wait_idle/0]).

-define(FILTER, <<"$SYS/brokers/+/guard/#">>).
%% How long a test waits for an event that must come (a bound, not a timing assertion).
-define(WAIT_MS, 15000).

all() ->
    [
        each_outcome_published_once,
        skipped_fire_publishes_nothing,
        turned_off_publishes_nothing,
        offsite_results_published,
        dead_man_and_restore_published,
        no_secret_in_any_payload
    ].

init_per_suite(Config) ->
    Config1 = emqx_guard_ct_helper:init_suite(Config),
    ok = application:set_env(emqx_guard, offsite_retry_ms, []),
    ok = application:set_env(emqx_guard, offsite_requeue_ms, [3600000]),
    ok = application:set_env(emqx_guard, offsite_extra, #{max_retries => 0, connect_timeout_ms => 2000, timeout_ms => 20000}),
    ok = application:set_env(emqx_guard, notify, #{backoff_ms => [], timeout_ms => 2000, dead_man_grace_ms => 0}),
    Config1.

end_per_suite(_Config) ->
    [application:unset_env(emqx_guard, K) || K <- [offsite_retry_ms, offsite_requeue_ms, offsite_extra, notify]],
    emqx:reset(),
    ok.

init_per_testcase(TC, Config) ->
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    ok = emqx_broker:unsubscribe_all(),
    ok = emqx_broker:subscribe(?FILTER),
    set_now(erlang:system_time(millisecond)),
    case TC of
        dead_man_and_restore_published -> ok;
        _ -> start_app(fake_opts(#{}))
    end,
    Config1.

end_per_testcase(_TC, _Config) ->
    emqx_guard_ct_helper:end_case(),
    ok = emqx_broker:unsubscribe_all(),
    flush_events().

%%--------------------------------------------------------------------------------------------

%% A good run and a failed one: one event each, on the node's topic, as EMQX sends its own `$SYS'
%% messages; the payload holds the run's facts as the notifications have them.
each_outcome_published_once(_Config) ->
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    #{last_run := Run = #{file := File, path := Path, size := Size, sha256 := Sha, started_at := Started}} =
        emqx_guard_scheduler:status(),
    {Topic, Msg, Ok} = next_event(),
    ?assertEqual(<<"$SYS/brokers/", (atom_to_binary(node()))/binary, "/guard/backup_ok">>, Topic),
    ?assertEqual(0, emqx_message:qos(Msg)),
    ?assert(emqx_message:is_sys(Msg)),
    ?assertNot(emqx_message:get_flag(retain, Msg)),
    ?assertEqual(emqx_sys, emqx_message:from(Msg)),
    ?assertMatch(#{<<"source">> := <<"emqx_guard">>, <<"event">> := <<"backup_ok">>, <<"trigger">> := <<"manual">>}, Ok),
    ?assertEqual(atom_to_binary(node()), maps:get(<<"node">>, Ok)),
    ?assertEqual({File, Path, Size, Sha, Started}, {maps:get(<<"file">>, Ok), maps:get(<<"path">>, Ok), maps:get(<<"size">>, Ok),
                                                   maps:get(<<"sha256">>, Ok), maps:get(<<"time_ms">>, Ok)}),
    ?assertEqual(maps:get(duration_ms, Run), maps:get(<<"duration_ms">>, Ok)),
    ?assertEqual(<<"emqx_ctl data import ", Path/binary>>, maps:get(<<"restore_command">>, Ok)),
    ?assertMatch([#{<<"name">> := File, <<"size">> := Size}], maps:get(<<"kept">>, Ok)),
    ?assert(is_binary(maps:get(<<"time">>, Ok))),
    ok = emqx_mgmt_data_backup:set_mode({error, <<"mnesia is overloaded">>}),
    ["Error: backup failed" ++ _ | _] = result(ctl(["backup_now"])),
    {Topic2, _, Failed} = next_event(),
    ?assertEqual(<<"$SYS/brokers/", (atom_to_binary(node()))/binary, "/guard/backup_failed">>, Topic2),
    ?assertMatch(#{<<"event">> := <<"backup_failed">>, <<"reason">> := <<"export failed: mnesia is overloaded">>}, Failed),
    ?assertNot(maps:is_key(<<"restore_command">>, Failed)),
    ?assertEqual(none, no_more_events()).

%% A scheduled fire that comes while a run goes is skipped: the run's own event only.
skipped_fire_publishes_nothing(_Config) ->
    [_ | _] = ctl(["backup_timezone", "UTC"]),
    [_ | _] = ctl(["backup_cron", "* * * * *"]),
    ok = emqx_mgmt_data_backup:set_mode({hang, 1500}),
    Self = self(),
    _ = spawn_link(fun() -> Self ! {run, emqx_guard_scheduler:run_now()} end),
    wait_until(fun() -> maps:get(running, emqx_guard_scheduler:status()) =/= undefined end),
    #{next_fire := Next} = emqx_guard_scheduler:status(),
    Timer = last_wake_timer(none),
    set_now(Next),
    emqx_guard_ct_helper:deliver(Timer),
    ?assertMatch(#{counts := #{skipped := 1}}, emqx_guard_scheduler:status()),
    receive {run, {ok, _}} -> ok after 30000 -> error(run_never_finished) end,
    wait_idle(),
    {_, _, #{<<"event">> := <<"backup_ok">>}} = next_event(),
    ?assertEqual(none, no_more_events()).

%% `sys_events off': a run publishes nothing; on again, the next run does.
turned_off_publishes_nothing(_Config) ->
    ?assertEqual(["sys_events = on (backup, off-site, restore and dead-man events go out on $SYS/brokers/<node>/guard/<event>)"],
                 ctl(["sys_events"])),
    ?assertEqual(["sys_events = off"], ctl(["sys_events", "off"])),
    ?assertEqual(false, maps:get(sys_events, emqx_guard_settings:load())),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    ok = emqx_mgmt_data_backup:set_mode({error, <<"mnesia is overloaded">>}),
    ["Error: backup failed" ++ _ | _] = result(ctl(["backup_now"])),
    ?assertMatch(["Error: sys_events must be" ++ _], ctl(["sys_events", "maybe"])),
    [_] = ctl(["sys_events", "on"]),
    ok = emqx_mgmt_data_backup:set_mode(ok),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    #{last_run := #{file := File}} = emqx_guard_scheduler:status(),
    %% the first event is the last run's: the two before it published nothing
    {_, _, #{<<"event">> := <<"backup_ok">>, <<"file">> := File}} = next_event(),
    ?assertEqual(none, no_more_events()).

%% Every off-site job's result: `offsite_ok' with the destination and what was uploaded, then,
%% the S3 server stopped, `offsite_failed' with the error line.
offsite_results_published(Config) ->
    S3 = emqx_guard_s3_helper:start(?config(data_dir, Config)),
    try
        ["backup_remote = s3" | _] = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(S3)]),
        ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
        #{last_run := #{file := File}} = emqx_guard_scheduler:status(),
        Events = events(2),
        [Ok] = [D || {_, _, D = #{<<"event">> := <<"offsite_ok">>}} <- Events],
        ?assertMatch([#{<<"event">> := <<"backup_ok">>}], [D || {_, _, D = #{<<"event">> := <<"backup_ok">>}} <- Events]),
        ?assertEqual(<<"s3://backups/ct">>, maps:get(<<"destination">>, Ok)),
        ?assertEqual(File, maps:get(<<"file">>, Ok)),
        ?assertEqual(<<"uploaded ", File/binary>>, maps:get(<<"offsite">>, Ok)),
        emqx_guard_s3_helper:stop(S3),
        ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
        Events2 = events(2),
        [{Topic, _, Failed}] = [E || E = {_, _, #{<<"event">> := <<"offsite_failed">>}} <- Events2],
        ?assertEqual(<<"$SYS/brokers/", (atom_to_binary(node()))/binary, "/guard/offsite_failed">>, Topic),
        ?assertMatch(<<"upload of emqx-export-", _/binary>>, maps:get(<<"reason">>, Failed)),
        ?assertEqual(none, no_more_events())
    after
        emqx_guard_s3_helper:stop(S3)
    end.

%% The dead-man warning (no success for two schedule periods) goes out once; a restore (issue 23
%% calls `emqx_guard_events:restored/1') too.
dead_man_and_restore_published(Config) ->
    Dir = filename:join(?config(data_dir, Config), "emqx_guard"),
    LastSuccess = erlang:system_time(millisecond) - 10 * 60000,
    ok = emqx_guard_store:save(filename:join(Dir, "notify_state"), #{tag => emqx_guard_notify_state, version => 2},
                               #{last_success => LastSuccess, warned_for => undefined}),
    {ok, _, _} = emqx_guard_settings:change(#{backup_cron => <<"* * * * *">>, backup_timezone => <<"UTC">>}),
    ok = emqx_guard_settings:forget(),
    start_app(fake_opts(#{})),
    ok = emqx_guard_notify:check_dead_man(),
    {Topic, _, Warning} = next_event(),
    ?assertEqual(<<"$SYS/brokers/", (atom_to_binary(node()))/binary, "/guard/dead_man">>, Topic),
    ?assertEqual(LastSuccess, maps:get(<<"last_success_ms">>, Warning)),
    ?assert(maps:get(<<"deadline_ms">>, Warning) < erlang:system_time(millisecond)),
    ok = emqx_guard_notify:check_dead_man(),
    ok = emqx_guard_events:restored(#{result => ok, trigger => manual, file => <<"emqx-export-2026-11-25-10-00-00.000.tar.gz">>,
                                      started_at => 1764064800000, duration_ms => 1234}),
    {_, _, Restored} = next_event(),
    ?assertMatch(#{<<"event">> := <<"restore_done">>, <<"file">> := <<"emqx-export-2026-11-25-10-00-00.000.tar.gz">>,
                   <<"time_ms">> := 1764064800000, <<"duration_ms">> := 1234}, Restored),
    ok = emqx_guard_events:restored(#{result => failed, error => <<"import refused">>, started_at => 1764064800000}),
    {_, _, #{<<"event">> := <<"restore_failed">>, <<"reason">> := <<"import refused">>}} = next_event(),
    ?assertEqual(none, no_more_events()).

%% The settings hold every kind of secret (SMTP password, webhook URL path, chat tokens and
%% signing secrets, the S3 secret key): none is in any event's payload.
no_secret_in_any_payload(Config) ->
    S3 = emqx_guard_s3_helper:start(?config(data_dir, Config)),
    Secrets = [<<"smtp-pass-Zq81">>, <<"hook-path-secret-77">>, <<"slack-path-secret-99">>, <<"SECdingtalk-secret-42">>,
               emqx_guard_s3_helper:secret_key()],
    try
        ["backup_remote = s3" | _] = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(S3)]),
        [_ | _] = ctl(["notify_smtp", "server=127.0.0.1", "port=9", "tls=none", "user=ops", "password=smtp-pass-Zq81",
                       "from=guard@example.com"]),
        [_ | _] = ctl(["notify_webhook", "http://127.0.0.1:9/hook-path-secret-77"]),
        [_ | _] = ctl(["notify_slack", "url=http://127.0.0.1:9/services/slack-path-secret-99"]),
        [_ | _] = ctl(["notify_dingtalk", "url=http://127.0.0.1:9/robot/send?access_token=tok", "secret=SECdingtalk-secret-42"]),
        %% every secret is set (the channels' deliveries fail: nothing listens on port 9)
        Held = iolist_to_binary(io_lib:format("~tp", [emqx_guard_settings:get()])),
        [?assertNotEqual(nomatch, binary:match(Held, Secret), Secret) || Secret <- Secrets],
        ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
        First = raw_events(2),
        emqx_guard_s3_helper:stop(S3),
        ok = emqx_mgmt_data_backup:set_mode({error, <<"mnesia is overloaded">>}),
        ["Error: backup failed" ++ _ | _] = result(ctl(["backup_now"])),
        ok = emqx_mgmt_data_backup:set_mode(ok),
        ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
        Payloads = [P || {_, P} <- First ++ raw_events(3)],
        ?assertEqual([<<"backup_failed">>, <<"backup_ok">>, <<"offsite_failed">>, <<"offsite_ok">>],
                     lists:usort([maps:get(<<"event">>, element(2, emqx_guard_json:decode(P))) || P <- Payloads])),
        [?assertEqual(nomatch, binary:match(P, Secret), {Secret, P}) || P <- Payloads, Secret <- Secrets]
    after
        emqx_guard_s3_helper:stop(S3)
    end.

%%--------------------------------------------------------------------------------------------

%% The next event the subscriber gets: `{Topic, Msg, Payload decoded}'.
next_event() ->
    receive
        {deliver, Topic, Msg} ->
            {ok, Doc} = emqx_guard_json:decode(emqx_message:payload(Msg)),
            {Topic, Msg, Doc}
    after ?WAIT_MS ->
        error(no_event)
    end.

events(N) ->
    [next_event() || _ <- lists:seq(1, N)].

raw_events(N) ->
    [begin {T, M, _} = next_event(), {T, emqx_message:payload(M)} end || _ <- lists:seq(1, N)].

%% Nothing more comes (what was published went out from a process of its own: a short wait).
no_more_events() ->
    receive
        {deliver, Topic, _} -> {unexpected, Topic}
    after 300 -> none
    end.

flush_events() ->
    receive
        {deliver, _, _} -> flush_events()
    after 0 -> ok
    end.

last_wake_timer(Last) ->
    receive
        {fake_timer, _Ref, Delay, Pid, {emqx_guard_scheduler, wake, _} = Msg} -> last_wake_timer({Delay, Pid, Msg})
    after 0 ->
        case Last of
            none -> emqx_guard_ct_helper:next_timer(wake);
            _ -> Last
        end
    end.
